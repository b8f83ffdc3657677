"""The machine a benchmark ran on, printed with every figure."""

from __future__ import annotations

import os
import platform


def machine() -> dict:
    import psutil

    info = {"cpus": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "system": platform.system(), "machine": platform.machine()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return info

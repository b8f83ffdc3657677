"""Facts about the environment a run happens in: library versions, code commit, hardware (for lineage)."""

from __future__ import annotations

import os
import platform as _platform
import subprocess
from importlib import metadata
from pathlib import Path

LIBRARIES = ("torch", "transformers", "peft", "ray", "mlflow", "opacus", "deepspeed", "bitsandbytes", "llmft")


def library_versions(libraries: tuple[str, ...] = LIBRARIES) -> dict[str, str]:
    out = {}
    for lib in libraries:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "absent"
    return out


def git_commit(cwd: str | Path | None = None) -> str:
    """HEAD of the checkout llmft runs from, or "unknown" (an installed wheel has none)."""
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd or Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        return res.stdout.strip() if res.returncode == 0 and res.stdout.strip() else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def hardware() -> dict:
    gpus: list[str] = []
    try:
        import torch  # already imported by whoever trained or loads a model; cheap then

        if torch.cuda.is_available():
            gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        pass
    return {"host": _platform.node(), "machine": _platform.machine(), "cpu_count": os.cpu_count(), "gpus": gpus}

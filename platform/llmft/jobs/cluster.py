"""The Ray a job runs on: the cluster it was submitted to, else a local one started (and stopped) for it."""

from __future__ import annotations

import contextlib
import os
from typing import Iterator


@contextlib.contextmanager
def ray_session(*, num_cpus: int | None = None, dashboard: bool = False) -> Iterator[None]:
    """Attach to `RAY_ADDRESS` (set under `ray job submit`) or start a private local Ray; stop it only if started here.

    RAY_ADDRESS is exported for the duration: Ray Tune trials that start their own trainers
    find the cluster through it (stopped trials otherwise leak placement groups).
    A local start never attaches to a stray cluster recorded on this machine (`address="local"`).
    """
    import ray

    started = False
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=dashboard, log_to_driver=False)
        started = True
    previous = os.environ.get("RAY_ADDRESS")
    os.environ["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("RAY_ADDRESS", None)
        else:
            os.environ["RAY_ADDRESS"] = previous
        if started:
            ray.shutdown()

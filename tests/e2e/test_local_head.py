"""The local head is stopped by its last user only when no Ray job runs on it (issue 17's last gap).

`llmft cluster up` owns a 1-CPU head; a Ray job submitted to it (`ray job submit`) is no user in
the head's record, yet the head must outlive the command that lets go of it, saying why in one
line; once the job is stopped, letting go stops the head. Run it under the Ray lock:
`flock /tmp/llmft-ray.lock .venv/bin/python -m pytest tests/e2e/test_local_head.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.test_newcomer import free_port, processes_of

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RELEASE = "from llmft.jobs.cluster import release_head; import json; print(json.dumps(release_head('cluster')))"


def test_a_running_ray_job_keeps_the_local_head_up(tmp_path):
    bin_dir = Path(sys.executable).parent
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMFT_", "RAY_"))}
    env.update({"LLMFT_HOME": str(home), "HOME": str(tmp_path)})
    dashboard = f"http://127.0.0.1:{free_port()}"

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), env={**env, **extra}, capture_output=True, text=True, timeout=120)

    def ray_job(*args: str) -> subprocess.CompletedProcess:
        return run(str(bin_dir / "ray"), "job", args[0], "--address", dashboard, *args[1:], RAY_AUTH_MODE="token")

    up = run(str(bin_dir / "llmft"), "cluster", "up", "--num-cpus", "1", "--dashboard-port", dashboard.rsplit(":")[-1])
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        sub = ray_job("submit", "--submission-id", "held", "--no-wait", "--", "sleep", "300")
        assert sub.returncode == 0, sub.stdout + sub.stderr

        kept = run(sys.executable, "-c", RELEASE)  # what `serve down` does for its app: the last user lets go
        assert kept.returncode == 0, kept.stderr
        stopped, why = json.loads(kept.stdout)
        assert stopped is False, ray_job("status", "held").stdout + kept.stderr
        assert why.startswith("the local Ray head stays up: 1 unfinished Ray job on it (Ray job held "), why
        assert "\n" not in why and "`llmft cluster down`" in why
        status = run(str(bin_dir / "llmft"), "cluster", "status", "--json")
        state = json.loads(status.stdout)
        assert state["local_head"]["users"] == [] and state["jobs"][0].startswith("Ray job held ")

        stop = ray_job("stop", "held")
        assert stop.returncode == 0, stop.stdout + stop.stderr
        deadline = time.monotonic() + 30
        while "STOPPED" not in ray_job("status", "held").stdout and time.monotonic() < deadline:
            time.sleep(1)
        released = run(sys.executable, "-c", RELEASE)
        assert json.loads(released.stdout) == [True, None], released.stdout + released.stderr
        assert processes_of(home) == []
    finally:
        run(str(bin_dir / "llmft"), "cluster", "down")

"""The whole demo, as `make demo` runs it, in a fresh LLMFT_HOME."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.e2e]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, tiny_base_dir):
    home = tmp_path_factory.mktemp("demo-home")
    # Reuse the session's tiny base (the demo would build the same thing, seed 0, in ~25 s).
    shutil.copytree(tiny_base_dir, home / "storage" / "models" / "tiny")
    env = {**os.environ, "LLMFT_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    for var in ("LLMFT_DB_URL", "LLMFT_MLFLOW_URI", "LLMFT_STORAGE", "LLMFT_API_URL", "RAY_ADDRESS"):
        env.pop(var, None)
    proc = subprocess.run([sys.executable, "-m", "llmft.demo"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=1500)
    summary_path = home / "demo-summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    return proc, summary, home


def test_demo_succeeds_and_audit_chain_holds(demo_run):
    proc, summary, _ = demo_run
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert summary["results"]["audit"]["ok"]
    assert "where to look" in proc.stdout and "Ray dashboard" in proc.stdout


def test_demo_used_the_tiny_base_and_sample_data(demo_run):
    _, summary, home = demo_run
    base = summary["results"]["base model"]
    assert len(base["sha256"]) == 64
    tickets = summary["results"]["sample data"]["tickets"]
    assert os.path.getsize(tickets) > 10_000

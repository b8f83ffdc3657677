"""End-to-end tier: the demo pipeline in a subprocess.

The demo runs once per session (~8 min here) and both test_demo.py (what each stage did) and
test_demo_backends.py (where the state went) read that run. It runs on the production backends
(PostgreSQL, an MLflow server with artifacts in the bucket, S3 storage) wherever they can be
started, since only three settings differ from `make demo`'s embedded defaults (SQLite, a local
MLflow store, local storage), which the notebook and newcomer tests and the integration tier run;
LLMFT_E2E_DEMO=embedded runs it exactly as `make demo` does instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

DEMO_BUCKET = "llmft-demo"


@dataclass
class DemoRun:
    proc: subprocess.CompletedProcess
    summary: dict
    home: Path
    env: dict
    backends: dict | None  # {"db_url", "mlflow", "s3", "bucket"} when run on the production backends


def _on_production_backends() -> bool:
    from tests.backend_services import postgres_missing, s3_missing

    choice = os.environ.get("LLMFT_E2E_DEMO", "").strip().lower()
    if choice in ("embedded", "production"):
        return choice == "production"
    if os.environ.get("LLMFT_REQUIRE_BACKENDS") == "1":
        return True
    return postgres_missing() is None and s3_missing() is None


@pytest.fixture(scope="session")
def demo_backends(request, tmp_path_factory):
    """PostgreSQL store, an MLflow server (own Postgres database, artifacts in s3://llmft-demo/mlflow), the bucket."""
    if not _on_production_backends():
        yield None
        return
    from tests.backend_services import MlflowServer

    postgres, s3 = request.getfixturevalue("postgres"), request.getfixturevalue("s3_server")
    s3.bucket(DEMO_BUCKET)
    mlflow = MlflowServer(postgres.create_database("demo_mlflow"), tmp_path_factory.mktemp("demo-mlflow"),
                          s3=s3, bucket=DEMO_BUCKET).start()
    yield {"db_url": postgres.create_database("demo_llmft"), "mlflow": mlflow, "s3": s3, "bucket": DEMO_BUCKET}
    mlflow.stop()


@pytest.fixture(scope="session")
def demo_run(demo_backends, tmp_path_factory, tiny_base_dir) -> DemoRun:
    home = tmp_path_factory.mktemp("demo-home")
    env = {k: v for k, v in os.environ.items()
           if k not in ("LLMFT_DB_URL", "LLMFT_MLFLOW_URI", "LLMFT_STORAGE", "LLMFT_S3_ENDPOINT", "LLMFT_API_URL",
                        "RAY_ADDRESS")}
    env.update({"LLMFT_HOME": str(home), "PYTHONUNBUFFERED": "1"})
    if demo_backends:
        env.update({"LLMFT_DB_URL": demo_backends["db_url"], "LLMFT_MLFLOW_URI": demo_backends["mlflow"].uri,
                    **demo_backends["s3"].env(f"s3://{DEMO_BUCKET}/llmft")})
    # Reuse the session's tiny base (the demo would build the same thing, seed 0, in ~25 s), where the
    # demo looks for it: the storage directory, or the local cache of the bucket.
    shutil.copytree(tiny_base_dir, home / ("storage-cache" if demo_backends else "storage") / "models" / "tiny")
    proc = subprocess.run([sys.executable, "-m", "llmft.demo"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=1500)
    summary_path = home / "demo-summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    return DemoRun(proc, summary, home, env, demo_backends)

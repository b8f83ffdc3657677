"""The whole demo, unchanged, on the production backends: the metadata store on PostgreSQL, tracking and the
model registry on an MLflow server (its own Postgres database, artifacts in the bucket) and every platform file
in S3-compatible object storage (moto's server). Only the three settings an operator sets differ from `make demo`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.backend_services import MlflowServer
from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.e2e]

BUCKET = "llmft-demo"


@pytest.fixture(scope="module")
def backends(postgres, s3_server, tmp_path_factory):
    s3_server.bucket(BUCKET)
    mlflow = MlflowServer(postgres.create_database("demo_mlflow"), tmp_path_factory.mktemp("demo-mlflow"),
                          s3=s3_server, bucket=BUCKET).start()
    yield {"db_url": postgres.create_database("demo_llmft"), "mlflow": mlflow, "s3": s3_server}
    mlflow.stop()


@pytest.fixture(scope="module")
def demo_on_backends(backends, tmp_path_factory, tiny_base_dir):
    home = tmp_path_factory.mktemp("demo-backends-home")
    # The base model is read from the local cache of the object store (the demo would build the same one).
    shutil.copytree(tiny_base_dir, home / "storage-cache" / "models" / "tiny")
    env = {k: v for k, v in os.environ.items() if k not in ("LLMFT_API_URL", "RAY_ADDRESS")}
    env.update({"LLMFT_HOME": str(home), "PYTHONUNBUFFERED": "1", "LLMFT_DB_URL": backends["db_url"],
                "LLMFT_MLFLOW_URI": backends["mlflow"].uri, **backends["s3"].env(f"s3://{BUCKET}/llmft")})
    proc = subprocess.run([sys.executable, "-m", "llmft.demo"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=1500)
    summary_path = home / "demo-summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    return proc, summary, home, env


def test_demo_runs_unchanged_and_its_gates_pass(demo_on_backends):
    proc, summary, _, _ = demo_on_backends
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    r = summary["results"]
    assert r["audit"]["ok"] and r["evaluate v1"]["passed"], r["evaluate v1"]["reasons"]
    assert r["platform"]["db"].startswith("postgresql+psycopg://")
    assert r["promote v1"]["production"] == f"triage:{r['train v1']['version']}"


def test_every_file_went_to_the_bucket_and_none_to_a_local_store(demo_on_backends, backends):
    _, summary, home, _ = demo_on_backends
    keys = backends["s3"].keys(BUCKET)
    for prefix in ("llmft/datasets/acme/tickets/", "llmft/datasets/acme/triage/",  # raw and curated snapshots
                   "llmft/train/acme/",  # Ray Train checkpoints
                   "llmft/registry/acme/objects/", "llmft/registry/acme/records/",  # registry versions
                   "mlflow/"):  # the MLflow server's artifacts (loss curves, eval reports)
        assert any(k.startswith(prefix) for k in keys), (prefix, sorted({k.rsplit("/", 2)[0] for k in keys})[:40])
    assert any("checkpoint_step_" in k for k in keys if k.startswith("llmft/train/"))
    assert not (home / "storage").exists() and not (REPO_ROOT / "s3:").exists()  # nothing written to a local store
    assert not (home / "mlflow.db").exists() and not (home / "llmft.db").exists()


def test_state_is_in_postgres_and_the_mlflow_server(demo_on_backends, backends):
    from mlflow import MlflowClient
    from sqlalchemy import create_engine, text

    _, summary, _, _ = demo_on_backends
    engine = create_engine(backends["db_url"])
    with engine.connect() as conn:
        kinds = dict(conn.execute(text("SELECT kind, count(*) FROM jobs GROUP BY kind")).all())
        audit_rows = conn.execute(text("SELECT count(*) FROM audit_events")).scalar_one()
    engine.dispose()
    assert kinds.get("training", 0) >= 2 and kinds.get("curation", 0) >= 2, kinds
    assert audit_rows == summary["results"]["audit"]["records"]

    client = MlflowClient(tracking_uri=backends["mlflow"].uri)
    versions = client.search_model_versions("name='acme.triage'")
    assert len(versions) >= 2 and all(v.source.startswith(("runs:/", "models:/")) for v in versions)
    from llmft.store import Store

    store = Store(backends["db_url"])
    platform_production = store.current_aliases("acme", "triage")["production"]
    store.close()
    assert client.get_model_version_by_alias("acme.triage", "production").version == str(platform_production)
    run = client.get_run(versions[0].run_id)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # artifacts go through the server, to the bucket


def test_models_verify_rehashes_the_production_version_from_the_bucket(demo_on_backends):
    _, _, home, env = demo_on_backends
    shutil.rmtree(home / "storage-cache" / "registry", ignore_errors=True)  # only the bucket is left to read
    out = subprocess.run([sys.executable, "-m", "llmft.cli.main", "models", "verify", "triage@production",
                          "--tenant", "acme", "--json"], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["ok"] is True

"""The whole demo, unchanged, on the production backends: the metadata store on PostgreSQL, tracking and the
model registry on an MLflow server (its own Postgres database, artifacts in the bucket) and every platform file
in S3-compatible object storage (moto's server). Only the three settings an operator sets differ from `make demo`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.e2e]


@pytest.fixture(scope="module")
def demo_on_backends(demo_run):
    if demo_run.backends is None:
        pytest.skip("the session's demo ran on the embedded defaults (LLMFT_E2E_DEMO=embedded, or no Postgres/S3)")
    return demo_run


def test_demo_runs_unchanged_and_its_gates_pass(demo_on_backends):
    proc, summary = demo_on_backends.proc, demo_on_backends.summary
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    r = summary["results"]
    assert r["audit"]["ok"] and r["evaluate v1"]["passed"], r["evaluate v1"]["reasons"]
    assert r["platform"]["db"].startswith("postgresql+psycopg://")
    assert r["promote v1"]["production"] == f"triage:{r['train v1']['version']}"


def test_every_file_went_to_the_bucket_and_none_to_a_local_store(demo_on_backends):
    home, backends = demo_on_backends.home, demo_on_backends.backends
    keys = backends["s3"].keys(backends["bucket"])
    for prefix in ("llmft/datasets/acme/tickets/", "llmft/datasets/acme/triage/",  # raw and curated snapshots
                   "llmft/train/acme/",  # Ray Train checkpoints
                   "llmft/registry/acme/objects/", "llmft/registry/acme/records/",  # registry versions
                   "mlflow/"):  # the MLflow server's artifacts (loss curves, eval reports)
        assert any(k.startswith(prefix) for k in keys), (prefix, sorted({k.rsplit("/", 2)[0] for k in keys})[:40])
    assert any("checkpoint_step_" in k for k in keys if k.startswith("llmft/train/"))
    assert not (home / "storage").exists() and not (REPO_ROOT / "s3:").exists()  # nothing written to a local store
    assert not (home / "mlflow.db").exists() and not (home / "llmft.db").exists()


def test_state_is_in_postgres_and_the_mlflow_server(demo_on_backends):
    from mlflow import MlflowClient
    from sqlalchemy import create_engine, text

    summary, backends = demo_on_backends.summary, demo_on_backends.backends
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
    home, env = demo_on_backends.home, demo_on_backends.env
    shutil.rmtree(home / "storage-cache" / "registry", ignore_errors=True)  # only the bucket is left to read
    out = subprocess.run([sys.executable, "-m", "llmft.cli.main", "models", "verify", "triage@production",
                          "--tenant", "acme", "--json"], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["ok"] is True

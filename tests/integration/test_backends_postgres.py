"""The metadata store, its migrations, the audit log, the control plane and job state on a real PostgreSQL 15.

The session starts a throwaway cluster (tests/backend_services.py); each test gets a fresh
database named in LLMFT_DB_URL. The concurrency test runs two API processes and two job
processes against one database at once: what SQLite serialises must hold here too.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from sqlalchemy import inspect, text

from tests.conftest import REPO_ROOT

TABLES = {"tenants", "api_keys", "snapshots", "jobs", "job_events", "job_checkpoints", "privacy_ledger",
          "model_versions", "alias_moves", "deployments", "audit_events", "alembic_version"}


@pytest.fixture
def pg_store(pg_url):  # noqa: F811
    from llmft.store import Store

    store = Store()
    assert store.engine.dialect.name == "postgresql"
    yield store
    store.close()


def _spawn(role: str, args: dict, tmp_path, tag: str) -> subprocess.Popen:
    path = tmp_path / f"{tag}.json"
    path.write_text(json.dumps(args))
    return subprocess.Popen([sys.executable, "-m", "tests.backend_workers", role, str(path)], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_migrations_build_the_schema_once_even_from_two_processes_at_once(pg_url, tmp_path):  # noqa: F811
    code = ("import sys; from llmft.store import Store; s = Store(sys.argv[1]); "
            "print(s.engine.dialect.name, len(s.list_tenants()))")
    procs = [subprocess.Popen([sys.executable, "-c", code, pg_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    assert all(out.strip() == "postgresql 0" for out, _ in outs)
    from llmft.store import Store

    store = Store(pg_url)
    assert TABLES <= set(inspect(store.engine).get_table_names())
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == ["0001"]
    store.close()


def test_plain_postgresql_url_uses_the_shipped_driver(pg_url):  # noqa: F811
    from llmft.store import Store

    store = Store(pg_url.replace("postgresql+psycopg://", "postgresql://"))
    assert store.engine.dialect.driver == "psycopg"
    store.close()


def test_audit_log_is_append_only_and_chained_on_postgres(pg_store):
    pg_store.create_tenant("acme", "admin")
    job = pg_store.create_job(tenant="acme", kind="training", name="a", spec={"x": 1}, actor="me")
    pg_store.transition_job(job.id, "queued", actor="me")
    verdict = pg_store.audit.verify()
    assert verdict.ok and verdict.records == 3
    for statement in ("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2", "DELETE FROM audit_events WHERE seq = 3"):
        with pytest.raises(Exception, match="append-only"):
            with pg_store.engine.begin() as conn:
                conn.execute(text(statement))
    assert pg_store.audit.verify().ok and pg_store.audit.head()["seq"] == 3
    with pytest.raises(Exception, match="cannot go from queued to succeeded"):
        pg_store.transition_job(job.id, "succeeded", actor="me")
    assert pg_store.audit.head()["seq"] == 3  # a refused move writes nothing
    with pg_store.engine.begin() as conn:  # a superuser can lift the trigger; the chain still tells
        conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
        conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2"))
    verdict = pg_store.audit.verify()
    assert not verdict.ok and verdict.first_bad_seq == 2 and "edited" in verdict.reason


@pytest.fixture
def pg_api(pg_url, api):  # noqa: F811
    """The control-plane fixture on Postgres: `pg_url` sets LLMFT_DB_URL before `api` opens its store."""
    assert api.store.url.startswith("postgresql")
    return api


def test_control_plane_on_postgres(pg_api):
    from tests.control_fixtures import training_spec

    api = pg_api
    assert api.store.engine.dialect.name == "postgresql"
    r = api.client.post("/v1/tenants/acme/training-jobs", json={"spec": training_spec()}, headers=api.h("developer"))
    assert r.status_code == 201, r.text
    done = api.wait("acme", "training-jobs", r.json()["id"])
    assert done["status"] == "succeeded" and done["result"] == {"final_loss": 0.1}
    boom = api.client.post("/v1/tenants/acme/training-jobs", json={"spec": training_spec("boom-1")},
                           headers=api.h("developer")).json()
    failed = api.wait("acme", "training-jobs", boom["id"])
    assert failed["status"] == "failed" and "worker died: SIGKILL" in failed["error"]["message"]
    cps = api.client.get(f"/v1/tenants/acme/training-jobs/{done['id']}/checkpoints", headers=api.h("viewer")).json()
    assert [c["step_number"] for c in cps["data"]] == [5, 10]
    assert api.client.get("/v1/tenants/globex/training-jobs", headers=api.h("viewer")).status_code == 404
    other = api.client.get(f"/v1/tenants/globex/training-jobs/{done['id']}", headers=api.h("viewer", "globex"))
    assert other.status_code == 404  # another tenant's job does not exist for globex
    hdr = api.h("developer", **{"Idempotency-Key": "pg-1"})
    first = api.client.post("/v1/tenants/acme/training-jobs", json={"spec": training_spec("idem")}, headers=hdr)
    again = api.client.post("/v1/tenants/acme/training-jobs", json={"spec": training_spec("idem")}, headers=hdr)
    assert again.headers["idempotent-replayed"] == "true" and again.json() == first.json()
    assert api.client.post("/v1/tenants/acme/training-jobs", json={"spec": training_spec("v")},
                           headers=api.h("viewer")).status_code == 403
    assert api.store.audit.verify().ok
    assert any(r["action"] == "api.denied" for r in api.store.audit.records("acme"))


def test_job_state_sync_on_postgres(pg_store):
    from llmft.errors import LlmftError
    from llmft.jobs.job_run import JobRun

    pg_store.create_tenant("acme", "admin")

    def stage(spec, ctx):  # noqa: ANN001, ANN202
        ctx.recorder.event("step 1", data={"loss": 1.0})
        ctx.recorder.checkpoint(1, f"file:///ckpt/{ctx.job_id}/1", {"loss": 1.0}, sha256="b" * 64)
        ctx.recorder.result({"mlflow_run_id": "r1"})
        if spec["fail"]:
            raise RuntimeError("Traceback...\nRuntimeError: worker died: SIGKILL")
        return {"final_loss": 0.5}

    ok = JobRun.open(pg_store, kind="training", tenant="acme", name="ok", spec={"fail": False}, actor="me")
    assert ok.run(stage, {"fail": False})["status"] == "succeeded"
    job = pg_store.get_job("acme", ok.job.id)
    assert job.result == {"mlflow_run_id": "r1", "final_loss": 0.5} and job.started_at and job.finished_at
    assert [c.step for c in pg_store.list_checkpoints(job.id)] == [1]
    bad = JobRun.open(pg_store, kind="training", tenant="acme", name="bad", spec={"fail": True}, actor="me")
    with pytest.raises(LlmftError, match="worker died"):
        bad.run(stage, {"fail": True})
    failed = pg_store.get_job("acme", bad.job.id)
    assert failed.status == "failed" and failed.error == "RuntimeError: worker died: SIGKILL"
    resumed = JobRun.open(pg_store, kind="training", tenant="acme", name="bad", spec={"fail": True}, actor="me")
    assert resumed.job.id == bad.job.id and resumed.job.status == "queued"
    actions = [r["action"] for r in pg_store.audit.records("acme") if r["object"] == f"job/{bad.job.id}"]
    assert actions == ["job.training.create", "job.queued", "job.running", "job.checkpoint", "job.failed", "job.queued"]
    assert pg_store.audit.verify().ok


def test_two_api_and_two_job_processes_write_at_once_without_lost_updates(pg_store, tmp_path):
    n, contended = 6, 8
    pg_store.create_tenant("acme", "admin")
    key = pg_store.create_api_key("acme", "developer", "setup")[0]
    shared = pg_store.create_job(tenant="acme", kind="training", name="shared-rmw", spec={}, actor="setup")
    race = []
    for i in range(contended):
        job = pg_store.create_job(tenant="acme", kind="training", name=f"race-{i}", spec={}, actor="setup")
        race.append(pg_store.transition_job(job.id, "queued", actor="setup").id)
    go = tmp_path / "go"
    common = {"url": pg_store.url, "go": str(go), "n": n}
    procs = [_spawn("api", {**common, "w": w, "key": key}, tmp_path, f"api{w}") for w in (0, 1)]
    procs += [_spawn("job", {**common, "w": w, "contended": race, "shared_job": shared.id}, tmp_path, f"job{w}")
              for w in (0, 1)]
    time.sleep(0.5)
    go.touch()
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err[-3000:] for _, err in outs]
    api0, api1, job0, job1 = (json.loads(out.strip().splitlines()[-1]) for out, _ in outs)

    # every API submission landed, and each of its jobs ran to the end
    for api in (api0, api1):
        assert api["own"] == [201] * n and api["statuses"] == ["succeeded"] * n
    # the same name submitted by both API processes at once: one created it, the other was told 409
    for name in api0["shared"]:
        assert sorted((api0["shared"][name], api1["shared"][name])) == [201, 409], name
    # each contended job started exactly once
    assert job0["won"] + job1["won"] == contended
    assert all(pg_store.job_by_id(j).status == "running" for j in race)
    # no lost update on one row written by both job processes
    result = pg_store.job_by_id(shared.id).result
    assert result == {f"w{w}-{i}": i for w in (0, 1) for i in range(n)}
    assert len(pg_store.list_checkpoints(shared.id)) == 2 * n
    for job in (job0, job1):
        assert job["outcomes"] == ["succeeded" if i % 2 == 0 else "failed" for i in range(n // 2)]
    # one unbroken chain, one audit record per state change
    verdict = pg_store.audit.verify()
    assert verdict.ok, verdict
    records = list(pg_store.audit.records())
    jobs = pg_store.list_jobs("acme")
    assert len(jobs) == 1 + contended + 2 * n + n + 2 * (n // 2)
    created = {r["object"] for r in records if r["action"] == "job.training.create"}
    assert created == {f"job/{j.id}" for j in jobs}
    assert sum(r["action"] == "job.checkpoint" and r["object"] == f"job/{shared.id}" for r in records) == 2 * n

"""The control plane on a real local Ray: jobs go through Ray's Job API and their status comes back.

The entrypoint here is a tiny stand-in honouring `python -m llmft.jobs`'s contract (`<kind> --job-id ID`,
the store's location in the environment; it reports into that job through the job model), so the test
exercises the submission and sync path, not a stage.
Run under `flock /tmp/llmft-ray.lock`.
"""

from __future__ import annotations

import sys
import textwrap
import time

import pytest

ENTRYPOINT = textwrap.dedent('''
    import argparse, os, signal, time
    from llmft.jobs import JobRun
    from llmft.store import Store

    p = argparse.ArgumentParser()
    p.add_argument("kind")
    p.add_argument("--job-id", required=True)
    args = p.parse_args()
    run = JobRun.attach(Store(os.environ["LLMFT_DB_URL"]), args.job_id, os.environ["LLMFT_ACTOR"])

    def stage(spec, ctx):
        ctx.recorder.event("tiny job started", data={"pid": os.getpid()})
        ctx.recorder.checkpoint(1, "file:///ckpt-1", {"loss": 1.0}, "b" * 64)
        print("step 1 done", flush=True)
        if spec["name"].startswith("kill"):
            os.kill(os.getpid(), signal.SIGKILL)  # a worker killed mid-training
        if spec["name"].startswith("slow"):
            time.sleep(120)
        return {"final_loss": 0.25}

    run.run(stage, run.job.spec, ray_job_id=os.environ.get("RAY_JOB_SUBMISSION_ID"))
''')


@pytest.fixture
def ray_dashboard(ray_cluster):
    return ray_cluster["dashboard_url"]


@pytest.fixture
def ray_api(ray_dashboard, llmft_home, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from llmft.control import create_app
    from llmft.jobs.runners import RayJobRunner
    from llmft.store import Store

    entrypoint = tmp_path / "stand_in_job.py"
    entrypoint.write_text(ENTRYPOINT)
    store = Store()
    store.create_tenant("acme", "test")
    key = store.create_api_key("acme", "developer", "test")[0]
    runner = RayJobRunner(store, ray_dashboard, command=[sys.executable, str(entrypoint)])
    client = TestClient(create_app(store, runner, preflight=False), raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {key}"
    yield client, store, runner
    store.close()


def _spec(name: str) -> dict:
    return {"spec": {"name": name, "base_model": "tiny", "dataset": "tickets-curated"}}


def _wait(client, job_id: str, until=("succeeded", "failed", "cancelled"), timeout: float = 120) -> dict:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/v1/tenants/acme/training-jobs/{job_id}").json()
        if body["status"] in until or time.monotonic() > deadline:
            return body
        time.sleep(0.5)


def test_job_runs_through_the_ray_job_api_and_its_status_is_synced(ray_api):
    client, store, runner = ray_api
    r = client.post("/v1/tenants/acme/training-jobs", json=_spec("tiny-ok"))
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["status"] == "queued" and job["ray_job_id"].startswith(f"llmft-{job['id']}-")
    info = runner.client.get_job_info(job["ray_job_id"])
    assert info.metadata["llmft_job_id"] == job["id"] and f"training --job-id {job['id']}" in info.entrypoint
    done = _wait(client, job["id"])
    assert done["status"] == "succeeded", done
    assert done["result"] == {"final_loss": 0.25}
    events = [e["message"] for e in client.get(f"/v1/tenants/acme/training-jobs/{job['id']}/events").json()["data"]]
    assert "tiny job started" in events and events[-1] == "job succeeded"
    assert "step 1 done" in runner.logs(store.get_job("acme", job["id"]))


def test_worker_killed_during_training_fails_the_job_and_keeps_its_checkpoint(ray_api):
    client, store, _ = ray_api
    job = client.post("/v1/tenants/acme/training-jobs", json=_spec("kill-1")).json()
    done = _wait(client, job["id"])
    assert done["status"] == "failed" and done["error"]["message"], done
    assert "-9" in done["error"]["message"] or "SIGKILL" in done["error"]["message"] or "exit" in done["error"]["message"]
    cps = client.get(f"/v1/tenants/acme/training-jobs/{job['id']}/checkpoints").json()["data"]
    assert [c["step_number"] for c in cps] == [1]  # nothing lost: the checkpoint before the kill is on record
    assert store.audit.verify().ok


def test_cancel_stops_the_ray_job(ray_api):
    client, store, runner = ray_api
    job = client.post("/v1/tenants/acme/training-jobs", json=_spec("slow-1")).json()
    _wait(client, job["id"], until=("running",), timeout=60)
    r = client.post(f"/v1/tenants/acme/training-jobs/{job['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    deadline = time.monotonic() + 60
    while str(runner.client.get_job_status(job["ray_job_id"])) not in ("STOPPED", "JobStatus.STOPPED"):
        assert time.monotonic() < deadline, "Ray job did not stop"
        time.sleep(0.5)
    assert client.get(f"/v1/tenants/acme/training-jobs/{job['id']}").json()["status"] == "cancelled"

"""Writer processes for the concurrency tests on Postgres: `python -m tests.backend_workers ROLE ARGS.json`.

`api`: the control plane (the real app under TestClient, stand-in job runs) submitting jobs.
`job`: a job process reporting on jobs through the store, racing the other one on shared jobs.
Each waits for ARGS["go"] to exist so that every process writes at the same time, then prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def _wait_for_go(path: str) -> None:
    deadline = time.monotonic() + 60
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise SystemExit("no go signal")
        time.sleep(0.01)


def api_process(args: dict) -> dict:
    from fastapi.testclient import TestClient

    from llmft.control import create_app
    from llmft.control.ratelimit import RateLimiter
    from llmft.jobs.runners import LocalRunner
    from llmft.store import Store
    from tests.control_fixtures import stand_in_kinds, training_spec

    store = Store(args["url"])
    runner = LocalRunner(store, kinds=stand_in_kinds())
    app = create_app(store, runner, limiter=RateLimiter(rate=10_000, burst=10_000), max_body=64 * 1024,
                     preflight=False)
    client = TestClient(app, raise_server_exceptions=False)
    headers = {"Authorization": f"Bearer {args['key']}"}
    _wait_for_go(args["go"])
    own, shared = [], {}
    for i in range(args["n"]):
        r = client.post("/v1/tenants/acme/training-jobs", json={"spec": training_spec(f"api{args['w']}-{i}")},
                        headers=headers)
        own.append((r.status_code, r.json().get("id")))
        name = f"shared-{i}"  # the other API process submits the same names at the same time
        shared[name] = client.post("/v1/tenants/acme/training-jobs", json={"spec": training_spec(name)},
                                   headers=headers).status_code
    for _, job_id in own:
        if job_id:
            runner.wait(job_id)
    statuses = [client.get(f"/v1/tenants/acme/training-jobs/{job_id}", headers=headers).json()["status"]
                for _, job_id in own if job_id]
    client.close()
    return {"own": [code for code, _ in own], "statuses": statuses, "shared": shared}


def job_process(args: dict) -> dict:
    from llmft.errors import ConflictError
    from llmft.jobs.job_run import JobRun
    from llmft.store import Store

    store = Store(args["url"])
    _wait_for_go(args["go"])
    won = 0
    for job_id in args["contended"]:  # both processes try to start each of these jobs
        try:
            store.transition_job(job_id, "running", actor=f"job-{args['w']}")
            won += 1
        except ConflictError:
            pass
    for i in range(args["n"]):  # read-modify-write of one job's result from both processes
        store.merge_job_result(args["shared_job"], {f"w{args['w']}-{i}": i})
        store.add_checkpoint(args["shared_job"], step=args["w"] * 1000 + i, uri=f"file:///ckpt/{args['w']}/{i}")

    def stage(spec, ctx):  # noqa: ANN001, ANN202
        ctx.recorder.event("step 1", data={"loss": 1.0})
        ctx.recorder.checkpoint(1, f"file:///ckpt/{ctx.job_id}/1", {"loss": 1.0})
        ctx.recorder.result({"partial": True})
        if spec["fail"]:
            raise RuntimeError("worker died: SIGKILL")
        return {"final_loss": 0.5}

    outcomes = []
    for i in range(args["n"] // 2):
        spec = {"fail": i % 2 == 1}
        run = JobRun.open(store, kind="training", tenant="acme", name=f"job{args['w']}-{i}", spec=spec,
                          actor=f"job-{args['w']}")
        try:
            outcomes.append(run.run(stage, spec)["status"])
        except Exception:  # noqa: BLE001 - the failing half: its state is what the parent checks
            outcomes.append(run.as_dict()["status"])
    return {"won": won, "outcomes": outcomes}


if __name__ == "__main__":
    role, args = sys.argv[1], json.loads(Path(sys.argv[2]).read_text())
    out = {"api": api_process, "job": job_process}[role](args)
    print(json.dumps(out))

"""Several Ray nodes and the loss of one, through the platform's own paths: curation spread over nodes, a
training job whose node dies mid-run, Serve replicas of one colour on two nodes with one node lost under
load, and a job whose driver (the `python -m llmft.jobs` entrypoint under Ray's Job API) is killed."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest

from tests.multinode_cluster import (actor_nodes, deploy_app, lose_a_training_node, retrying_load, wait_for,
                                     wait_job_api, warm_up)
from tests.train_fixtures import training_store

TRAIN = {"tenant": "acme", "dataset": "support", "method": "lora",
         "optim": {"max_steps": 16, "batch_size": 4, "learning_rate": 3e-3},
         "data": {"max_seq_len": 128, "packing": True, "validation_every": 4},
         "checkpoint": {"every_n_steps": 4, "keep_last": 1},
         "resources": {"num_workers": 2, "placement_strategy": "SPREAD"}}


@pytest.fixture
def env(llmft_home, mlflow_db_template, curated_train_snapshot):
    with training_store(llmft_home, mlflow_db_template, curated_train_snapshot) as store:
        yield store


def training_spec(tiny_base_dir, name: str, **kw):
    from llmft.config.training import TrainingSpec

    return TrainingSpec.model_validate({**TRAIN, "name": name, "base_model": str(tiny_base_dir), **kw})


def test_curation_blocks_run_on_several_nodes(nodes, store, tiny_base_dir, tmp_path):
    from ray.util.state import list_tasks

    from llmft.config import CurationSpec, DatasetSpec
    from llmft.data import snapshots
    from llmft.demo.samples import generate_sample_dataset
    from llmft.jobs import run_job

    paths = generate_sample_dataset(tmp_path / "sample", seed=0, n_tickets=150)
    store.create_tenant("acme", "admin")
    snapshots.register(DatasetSpec(name="tickets", tenant="acme", source=str(paths["tickets"]),
                                   subject_field="customer_id", license_class="proprietary"), store, "t")
    started_ms = time.time() * 1000
    spec = CurationSpec(tenant="acme", source="tickets", output="tickets-curated", tokenizer=str(tiny_base_dir),
                        format={"style": "chat"})
    job = run_job("curation", spec, store, "t", options={"num_blocks": 6})
    assert job["status"] == "succeeded" and job["result"]["rows"] > 0
    time.sleep(2)  # task events reach the GCS asynchronously
    tasks = [t for t in list_tasks(detail=True, limit=10000, raise_on_missing_output=False)
             if (t.start_time_ms or 0) >= started_ms and t.node_id]
    where = {t.node_id for t in tasks}
    assert len(where) >= 2, f"curation ran on {len(where)} node(s): {sorted({t.name for t in tasks})[:10]}"
    print(f"\ncuration: {len(tasks)} Ray tasks on {len(where)} nodes")


def test_training_node_lost_resumes_from_checkpoint_on_the_rest(nodes, env, tiny_base_dir, tmp_path):
    from llmft.jobs import run_job

    store, pid_dir, out = env, tmp_path / "pids", {}

    def train() -> None:
        try:
            out["job"] = run_job("training", training_spec(tiny_base_dir, "node-loss"), store, "tester",
                                 options={"debug": {"pid_dir": str(pid_dir), "step_delay_s": 0.3}})
        except BaseException as exc:  # noqa: BLE001 - re-raised below, in the test's thread
            out["error"] = exc

    runner = threading.Thread(target=train, daemon=True)
    runner.start()
    try:
        record = lose_a_training_node(nodes, pid_dir, at_step=6)  # main thread: Cluster calls need it
        runner.join(timeout=300)
    finally:
        nodes.top_up(2)
    assert "error" not in out, out.get("error")
    job = out["job"]
    assert len(set(record["worker_nodes"].values())) == 2  # SPREAD: one worker per node before the loss
    assert job["status"] == "succeeded" and job["result"]["outcome"]["steps"] == 16
    assert [c.step for c in store.list_checkpoints(job["id"])][-1] == 16
    events = store.list_job_events(job["id"])
    for e in events:
        print("EVENT", e.message, e.data)
    lost = [e for e in events if "lost with its node" in e.message]
    resumed = [e for e in events if e.message.startswith("resumed from checkpoint_step_")]
    assert lost and resumed, [e.message for e in events]
    assert any(e.data.get("node_id") == record["removed"] for e in lost), [e.data for e in lost]
    assert lost[0].id < resumed[-1].id and lost[0].data["at"] >= record["removed_at"] - 1
    assert resumed[-1].data["step"] in (4, 8) and resumed[-1].data["step"] <= record["step_at_loss"]
    print(f"\nnode loss during training: lost at step {record['step_at_loss']}, resumed from step "
          f"{resumed[-1].data['step']}, next step completed {record['next_step_s']:.1f} s after the node loss; "
          f"event: {lost[0].message}")


def test_serve_node_lost_under_load_loses_no_request(nodes, serving_adapters, tmp_path):
    from ray import serve

    from llmft.store import Store

    store = Store(f"sqlite:///{tmp_path / 'llmft.db'}")
    store.create_tenant("acme", "test")
    key = store.create_api_key("acme", "developer", "test")[0]
    stop, results, clients = threading.Event(), [], []
    try:
        base_url = deploy_app(nodes, store, serving_adapters["base"], serving_adapters["root"], tmp_path,
                              max_adapters=4, replicas=2, replica_cpus=0.5)
        blue = actor_nodes("ServeReplica:llm:blue")
        assert len(set(blue.values())) == 2, f"blue's replicas are not on two nodes: {blue}"
        gateway = set(actor_nodes("ServeReplica:llm:Gateway").values())
        target = [n for n in nodes.removable(blue.values()) if n not in gateway]
        assert target, f"no worker node to lose among {blue} (gateway on {gateway})"
        assert len(warm_up(base_url, key, 2)) == 2  # both blue replicas hold the adapter: no cold load in the count
        clients += [threading.Thread(target=retrying_load, args=(base_url, key, stop, results)) for _ in range(2)]
        for c in clients:
            c.start()
        wait_for(results, 10)
        removed_at = nodes.remove(target[0])
        time.sleep(25)
    finally:
        stop.set()
        for c in clients:
            c.join(timeout=120)
        serve.shutdown()
        store.close()
        nodes.top_up(2)
    before = [r for r in results if r["t"] < removed_at]
    after = [r for r in results if r["t"] > removed_at + 2]
    lost = [r for r in results if r["final"] != 200]
    retried = [r for r in results if r["first"] != 200]
    assert before and not lost, (len(results), lost[:5])
    assert len(after) >= 20, f"only {len(after)} requests answered after the node loss"  # requests kept flowing
    print(f"\nnode loss under load: {len(results)} requests, {len(retried)} needed a retry, {len(lost)} lost; "
          f"{len(after)} answered after the loss; first errors {[r['error'][:80] for r in retried][:2]}")


def test_killed_driver_job_resubmitted_resumes(nodes, env, tiny_base_dir):
    import psutil

    from llmft.jobs import open_job
    from llmft.jobs.runners import RayJobRunner

    store = env
    spec = training_spec(tiny_base_dir, "driver-loss", optim={"max_steps": 40, "batch_size": 4, "learning_rate": 3e-3},
                         resources={"num_workers": 2})
    passthrough = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    passthrough["RAY_AUTH_MODE"] = os.environ.get("RAY_AUTH_MODE", "disabled")  # as this test cluster runs
    wait_job_api(nodes.dashboard_url)
    runner = RayJobRunner(store, nodes.dashboard_url, runtime_env={"env_vars": passthrough},
                          command=[sys.executable, "-m", "llmft.jobs"])
    job = runner.submit(open_job("training", spec, store, "tester").job, "tester")

    def wait(condition, timeout: float, what: str):  # noqa: ANN001, ANN202
        deadline = time.time() + timeout
        while time.time() < deadline:
            current = runner.sync(store.job_by_id(job.id))
            if condition(current):
                return current
            time.sleep(0.1)
        log = runner.logs(store.job_by_id(job.id))[-2000:]
        raise AssertionError(f"{what} within {timeout:.0f} s; job {store.job_by_id(job.id)}; log: {log}")

    wait(lambda j: store.list_checkpoints(j.id) or j.status in ("failed", "succeeded"), 240, "no checkpoint")
    drivers = [p for p in psutil.process_iter(["pid", "cmdline"])
               if p.info["cmdline"] and "llmft.jobs" in p.info["cmdline"] and job.id in p.info["cmdline"]
               and "python" in os.path.basename(p.info["cmdline"][0])]
    assert drivers and store.job_by_id(job.id).status == "running", (drivers, store.job_by_id(job.id))
    at_kill = max(c.step for c in store.list_checkpoints(job.id))
    run_id = store.job_by_id(job.id).result["mlflow_run_id"]
    for p in drivers:
        os.kill(p.info["pid"], signal.SIGKILL)  # the job's driver dies; its Ray Train workers die with it
    failed = wait(lambda j: j.status == "failed", 120, "the job was not marked failed")
    assert failed.error
    resumed = runner.submit(open_job("training", spec, store, "tester").job, "tester")  # the same job, queued again
    assert resumed.id == job.id
    done = wait(lambda j: j.status in ("succeeded", "failed"), 300, "the resubmitted job did not finish")
    assert done.status == "succeeded", done.error
    assert done.result["outcome"]["steps"] == 40 and done.result["mlflow_run_id"] == run_id
    restored = [e.data["step"] for e in store.list_job_events(job.id) if e.message.startswith("resumed from")]
    assert restored and restored[-1] >= at_kill, (restored, at_kill)
    print(f"\ndriver killed after checkpoint step {at_kill}; resubmitted job resumed from step {restored[-1]}")

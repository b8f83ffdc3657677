"""Losing a Ray node: time from the loss to the next completed training step, and requests lost by a retrying
client while Serve replicas of one colour lose a node.

    flock /tmp/llmft-ray.lock python benchmarks/multinode.py [--quick]

One `ray.cluster_utils.Cluster` on this machine (a 2-CPU head and two 1-CPU worker nodes,
tests/multinode_cluster.py, the same set-up as tests/multinode). Training: the platform's training
job (LoRA on the tiny base, 2 workers placed SPREAD, a checkpoint every 4 steps, 0.3 s added per
step so the loss lands mid-run); a node holding a worker is removed (all its processes killed at
once) after step 6; measured from the removal to the first step completed by the restarted worker
group, which resumes from the last checkpoint. Serve: the llmft app with 2 replicas per colour
(blue's on two nodes), two clients sending steady completions and retrying 5xx / dropped
connections with backoff (up to 6 tries), a node holding a blue replica removed after 5 s, 25 s of
load after it. The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from machine import machine  # noqa: E402


def prepare(work: Path) -> dict:
    """The tiny base, a curated snapshot, an empty MLflow DB, 2 served adapters; a store with tenant acme."""
    from mlflow.tracking import MlflowClient

    from llmft.demo.random_adapters import publish_adapters
    from llmft.models.loading import load_tokenizer
    from llmft.models.tiny import build_tiny_base
    from llmft.serving.engine.adapters import DirectoryAdapterSource
    from llmft.store import Store
    from tests.train_fixtures import write_curated_snapshot

    home = work / "home"
    home.mkdir(parents=True)
    os.environ["LLMFT_HOME"] = str(home)
    base = Path(build_tiny_base(work / "tiny", seed=0)["path"])
    snap = write_curated_snapshot(work / "snap", load_tokenizer(base))
    MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}").search_registered_models()
    source = DirectoryAdapterSource(work / "adapters")
    publish_adapters(source, base, work / "scratch", [("acme", "support", "1"), ("acme", "billing", "1")],
                     aliases={("acme", "support", "1"): ("production",)})
    store = Store()
    store.create_tenant("acme", "admin")
    store.add_snapshot(tenant="acme", dataset="support", snapshot_id="snap-support-1", uri=str(snap),
                       classification="internal", row_count=112, kind="curated", actor="bench")
    return {"base": base, "adapters": source.root, "store": store, "home": home}


def training_node_loss(lc, env: dict, work: Path, steps: int) -> dict:  # noqa: ANN001
    from llmft.config.training import TrainingSpec
    from llmft.jobs import run_job
    from tests.multinode_cluster import lose_a_training_node

    spec = TrainingSpec.model_validate({
        "name": "bench-node-loss", "tenant": "acme", "dataset": "support", "method": "lora",
        "base_model": str(env["base"]), "optim": {"max_steps": steps, "batch_size": 4, "learning_rate": 3e-3},
        "data": {"max_seq_len": 128, "packing": True, "validation_every": 4},
        "checkpoint": {"every_n_steps": 4, "keep_last": 1},
        "resources": {"num_workers": 2, "placement_strategy": "SPREAD"}})
    pid_dir, out = work / "pids", {}

    def train() -> None:
        started = time.perf_counter()
        out["job"] = run_job("training", spec, env["store"], "bench",
                             options={"debug": {"pid_dir": str(pid_dir), "step_delay_s": 0.3}})
        out["job_s"] = time.perf_counter() - started

    runner = threading.Thread(target=train, daemon=True)
    runner.start()
    try:
        record = lose_a_training_node(lc, pid_dir, at_step=6)
        runner.join(timeout=300)
    finally:
        lc.top_up(2)
    job = out["job"]
    assert job["status"] == "succeeded" and job["result"]["outcome"]["steps"] == steps, job
    return {"next_step_s": record["next_step_s"], "step_at_loss": record["step_at_loss"],
            "resumed_step": record["resumed_step"], "job_s": out["job_s"]}


def serve_node_loss(lc, env: dict, work: Path, after_s: float) -> dict:  # noqa: ANN001
    from ray import serve

    from tests.multinode_cluster import actor_nodes, deploy_app, retrying_load, wait_for, warm_up

    store = env["store"]
    key = store.create_api_key("acme", "developer", "bench")[0]
    stop, results, clients = threading.Event(), [], []
    try:
        base_url = deploy_app(lc, store, env["base"], env["adapters"], work, max_adapters=4, replicas=2,
                              replica_cpus=0.5)
        blue = actor_nodes("ServeReplica:llm:blue")
        gateway = set(actor_nodes("ServeReplica:llm:Gateway").values())
        target = [n for n in lc.removable(blue.values()) if n not in gateway]
        if len(set(blue.values())) < 2 or not target:
            raise SystemExit(f"multinode benchmark: blue's replicas not on two worker nodes: {blue}")
        warm_up(base_url, key, 2)
        clients += [threading.Thread(target=retrying_load, args=(base_url, key, stop, results)) for _ in range(2)]
        for c in clients:
            c.start()
        wait_for(results, 10)
        removed_at = lc.remove(target[0])
        time.sleep(after_s)
    finally:
        stop.set()
        for c in clients:
            c.join(timeout=120)
        serve.shutdown()
    retried = [r for r in results if r["first"] != 200]
    return {"requests": len(results), "lost": sum(r["final"] != 200 for r in results), "retried": len(retried),
            "answered_after_loss": sum(r["t"] > removed_at for r in results),
            "max_tries": max((r["tries"] for r in results), default=0)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    from tests.multinode_cluster import LocalCluster

    with tempfile.TemporaryDirectory(prefix="llmft-bench-multinode-") as tmp:
        work = Path(tmp)
        env = prepare(work)
        lc = LocalCluster(head_cpus=2, nodes=2, node_cpus=1)
        try:
            train = training_node_loss(lc, env, work, steps=12 if args.quick else 24)
            served = serve_node_loss(lc, env, work, after_s=15 if args.quick else 30)
        finally:
            lc.close()
            env["store"].close()
            shutil.rmtree(work / "home", ignore_errors=True)
    result = {
        "benchmark": "multinode",
        "node_loss_next_step_s": round(train["next_step_s"], 1),
        "node_loss_lost_requests": served["lost"],
        "node_loss_requests": served["requests"],
        "node_loss_retried_requests": served["retried"],
        "node_loss_answered_after_loss": served["answered_after_loss"],
        "node_loss_max_tries": served["max_tries"],
        "train_step_at_loss": train["step_at_loss"], "train_resumed_step": train["resumed_step"],
        "train_job_s": round(train["job_s"], 1),
        "cluster": "ray.cluster_utils.Cluster on one machine: head 2 CPUs + 2 worker nodes x 1 CPU",
        "machine": machine(),
    }
    print(f"node loss: next training step {result['node_loss_next_step_s']} s after the loss (resumed from step "
          f"{train['resumed_step']}); serving {served['requests']} requests, {served['retried']} retried, "
          f"{served['lost']} lost")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

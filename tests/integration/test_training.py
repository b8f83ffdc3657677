"""Training on Ray Train with 2 CPU workers, through the job layer (store + MLflow), with workers killed mid-run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SPEC = {"tenant": "acme", "base_model": None, "dataset": "support", "method": "lora",
        "optim": {"max_steps": 10, "batch_size": 4, "learning_rate": 3e-3},
        "data": {"max_seq_len": 128, "packing": True, "validation_every": 4},
        "checkpoint": {"every_n_steps": 4, "keep_last": 1}, "resources": {"num_workers": 2}}


@pytest.fixture
def ray_local(ray_cluster):
    """The tier's session-wide Ray."""
    return ray_cluster


@pytest.fixture
def env(llmft_home, mlflow_db_template, tiny_base_dir, curated_train_snapshot):
    from llmft.store import Store

    llmft_home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(mlflow_db_template, llmft_home / "mlflow.db")
    store = Store()
    store.create_tenant("acme", "admin", epsilon_budget=10.0)
    store.add_snapshot(tenant="acme", dataset="support", snapshot_id="snap-support-1", uri=str(curated_train_snapshot),
                       classification="internal", row_count=112, kind="curated", actor="test")
    yield store
    store.close()


def spec(tiny_base_dir, name, **kw):
    from llmft.config.training import TrainingSpec

    data = {**SPEC, "name": name, "base_model": str(tiny_base_dir), **kw}
    return TrainingSpec.model_validate(data)


def kill_rank1_after(pid_dir: Path, step: int, record: dict) -> threading.Thread:
    """SIGKILL rank 1's process once it has passed `step`; record when, and when rank 0 next completes a step."""
    def watch() -> None:
        deadline = time.time() + 240
        while time.time() < deadline:
            try:
                if int((pid_dir / "rank1.step").read_text() or 0) >= step:
                    pid = int((pid_dir / "rank1.pid").read_text())
                    old = (pid_dir / "rank0.pid").read_text()
                    record["killed_at"], record["pid"] = time.time(), pid
                    os.kill(pid, signal.SIGKILL)
                    while time.time() < deadline:  # the replacement rank 0 reports its first completed step
                        if (pid_dir / "rank0.pid").read_text() != old and int((pid_dir / "rank0.step").read_text()
                                                                             or 0) > 4:
                            record["recovered_s"] = time.time() - record["killed_at"]
                            return
                        time.sleep(0.05)
                    return
            except (FileNotFoundError, ValueError):
                pass
            time.sleep(0.05)
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_lora_ddp_job_tracking_fault_tolerance_and_resume(ray_local, env, tiny_base_dir, tmp_path):
    from mlflow.tracking import MlflowClient

    from llmft.errors import LlmftError
    from llmft.settings import Settings
    from llmft.jobs import run_job

    store = env
    # 1. a plain run: job, events, checkpoints in the store; MLflow params, metrics, lineage, loss curve
    a = run_job("training", spec(tiny_base_dir, "run-a"), store, "tester")
    assert a["status"] == "succeeded", a
    out_a = a["result"]["outcome"]
    assert out_a["steps"] == 10
    final = Path(out_a["checkpoint"]["uri"])
    assert (final / "adapter" / "adapter_config.json").is_file()
    assert (final / "adapter" / "adapter_model.safetensors").is_file()
    ckpts = store.list_checkpoints(a["id"])
    assert [c.step for c in ckpts] == [4, 8, 10] and all(c.sha256 for c in ckpts)
    kept = sorted(p.name for p in final.parent.iterdir() if p.name.startswith("checkpoint_step_"))
    assert len(kept) <= 2 and "checkpoint_step_000010" in kept  # last 1 + best by val loss
    client = MlflowClient(Settings.from_env().mlflow_uri)
    run = client.get_run(a["result"]["mlflow_run_id"])
    assert run.data.params["lora.r"] == "8" and run.data.tags["llmft.dataset.snapshot"] == "snap-support-1"
    for tag in ("llmft.dataset.sha256", "llmft.base_model.sha256", "git.commit", "version.torch", "topology.workers"):
        assert run.data.tags[tag]
    losses = [m.value for m in sorted(client.get_metric_history(run.info.run_id, "loss"), key=lambda m: m.step)]
    assert len(losses) == 10 and min(losses[-3:]) < losses[0]
    for key in ("val_loss", "tokens_per_s", "grad_norm", "lr"):
        assert client.get_metric_history(run.info.run_id, key)
    assert "loss_curve.png" in [f.path for f in client.list_artifacts(run.info.run_id)]
    sha_a = out_a["checkpoint"]["weights_sha256"]

    # 1b. the job's output goes to the registry with the CLI alone: final output by job, or any checkpoint
    from typer.testing import CliRunner

    from llmft.cli.main import app

    registered = CliRunner().invoke(app, ["models", "register", "support", "--from-job", "run-a", "--tenant", "acme",
                                          "--json"])
    assert registered.exit_code == 0, registered.output
    from llmft.registry import ModelRegistry

    v1 = ModelRegistry(store=store).resolve("acme", json.loads(registered.output)["ref"])
    assert v1.lineage["training"]["job_id"] == a["id"] and v1.lineage["dataset"]["snapshot_id"] == "snap-support-1"
    by_dir = CliRunner().invoke(app, ["models", "register", "support", "--from", str(final / "adapter"),
                                      "--tenant", "acme", "--json"])  # the job is found from its recorded checkpoint
    assert by_dir.exit_code == 0, by_dir.output
    assert json.loads(by_dir.output)["ref"] == v1.ref and json.loads(by_dir.output)["created"] is False

    # 2. rank 1 killed mid-run: replaced, resumed from the step-4 checkpoint, same step count and same bits
    pid_dir = tmp_path / "pids-b"
    record: dict = {}
    watcher = kill_rank1_after(pid_dir, 6, record)
    b = run_job("training", spec(tiny_base_dir, "run-b", register_as="support-b"), store, "tester",
                options={"debug": {"pid_dir": str(pid_dir), "step_delay_s": 0.25}})
    watcher.join(timeout=5)
    assert "killed_at" in record, "the worker was never killed"
    assert b["status"] == "succeeded" and b["result"]["outcome"]["steps"] == 10
    assert any("resumed from checkpoint_step_000004" in e.message for e in store.list_job_events(b["id"]))
    assert b["result"]["outcome"]["checkpoint"]["weights_sha256"] == sha_a
    assert b["result"]["registered"]["ref"] == "support-b:1"  # register_as: registered when the job succeeded
    print(f"recovery: {record.get('recovered_s', float('nan')):.1f} s from SIGKILL to the next completed step")

    # 3. no retries left: the crash is recorded on the job; resubmitting the same name resumes and finishes
    pid_dir = tmp_path / "pids-c"
    watcher = kill_rank1_after(pid_dir, 6, {})
    with pytest.raises(LlmftError, match="failed"):
        run_job("training", spec(tiny_base_dir, "run-c", max_failures=0), store, "tester",
                options={"debug": {"pid_dir": str(pid_dir), "step_delay_s": 0.25}})
    watcher.join(timeout=5)
    failed = store.find_job("acme", "training", "run-c")
    assert failed.status == "failed" and failed.error
    c = run_job("training", spec(tiny_base_dir, "run-c", max_failures=0), store, "tester")
    assert c["id"] == failed.id and c["status"] == "succeeded" and c["result"]["outcome"]["steps"] == 10
    assert c["result"]["outcome"]["checkpoint"]["weights_sha256"] == sha_a


def test_dp_lora_two_workers_spends_and_guards_the_ledger(ray_local, env, tiny_base_dir):
    from mlflow.tracking import MlflowClient

    from llmft.errors import BudgetExceededError
    from llmft.settings import Settings
    from llmft.jobs import run_job

    store = env
    dp = {"enabled": True, "target_epsilon": 4.0, "delta": 1e-5, "max_grad_norm": 1.0}
    job = run_job("training", spec(tiny_base_dir, "dp-a", privacy=dp, data={"max_seq_len": 128, "packing": False},
                      optim={"max_steps": 12, "batch_size": 4, "learning_rate": 3e-3}), store, "tester")
    assert job["status"] == "succeeded", job
    eps = job["result"]["outcome"]["epsilon"]
    assert 0 < eps <= 4.0
    assert any("epsilon spent" in e.message for e in store.list_job_events(job["id"]))  # reported each epoch
    summary = store.privacy_summary("acme")
    assert summary.spent == pytest.approx(eps) and summary.reserved == 0
    run = MlflowClient(Settings.from_env().mlflow_uri).get_run(job["result"]["mlflow_run_id"])
    assert float(run.data.tags["llmft.result.epsilon"]) == pytest.approx(eps)
    with pytest.raises(BudgetExceededError, match="exceed"):
        run_job("training", spec(tiny_base_dir, "dp-b", privacy={**dp, "target_epsilon": 7.0},
                                 data={"max_seq_len": 128, "packing": False}), store, "tester")
    assert store.find_job("acme", "training", "dp-b") is None  # refused before any job or worker existed

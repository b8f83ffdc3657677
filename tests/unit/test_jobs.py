"""The one job model: create-or-resume, states, the stage's recorder, failure causes, cancel, the entrypoint."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import pytest

from llmft.errors import ConflictError, LlmftError, StageFailed
from llmft.jobs import JobRun, StoreRecorder, cancel_job, kind, open_job, run_job
from llmft.jobs.kinds import StageMissing
from tests.conftest import REPO_ROOT


@pytest.fixture
def acme(store):
    store.create_tenant("acme", "admin", epsilon_budget=5.0)
    return store


def _open(store, spec: dict, name: str = "j1") -> JobRun:
    return JobRun.open(store, kind="training", tenant="acme", name=name, spec=spec, actor="tester")


def test_open_creates_queued_and_refuses_a_second_active_or_succeeded_job(acme):
    run = _open(acme, {"a": 1})
    assert run.job.status == "queued"
    with pytest.raises(ConflictError, match=r"already exists \(queued\)"):
        _open(acme, {"a": 1})
    run.move("running")
    run.move("succeeded", result={"x": 1})
    with pytest.raises(ConflictError, match=r"already exists \(succeeded\)"):
        _open(acme, {"a": 1})
    assert [j.name for j in acme.list_jobs("acme")] == ["j1"]  # the refusals created nothing


def test_a_failed_job_resumes_under_its_name_with_the_same_spec_only(acme):
    run = _open(acme, {"a": 1})
    with pytest.raises(LlmftError, match="failed: boom"):
        run.run(lambda spec, ctx: (_ for _ in ()).throw(RuntimeError("boom")), {"a": 1})
    failed = acme.get_job("acme", run.job.id)
    assert failed.status == "failed" and failed.error == "boom"
    with pytest.raises(ConflictError, match="different spec"):
        _open(acme, {"a": 2})
    again = _open(acme, {"a": 1})
    assert again.job.id == run.job.id and again.job.status == "queued"
    assert any(e.message == "resubmitted: resuming" for e in acme.list_job_events(run.job.id))


def test_run_records_events_checkpoints_partial_results_and_the_outcome(acme):
    run = _open(acme, {"a": 1})

    def stage(spec, ctx):
        assert ctx.job_id == run.job.id and ctx.options == {"n": 3}
        ctx.recorder.result({"mlflow_run_id": "r-1"})
        ctx.recorder.event("step 1", data={"loss": 1.0})
        ctx.recorder.checkpoint(1, "file:///ckpt-1", {"loss": 1.0}, "c" * 64)
        assert acme.get_job("acme", ctx.job_id).status == "running"
        return {"final": 0.5}

    done = run.run(stage, {"a": 1}, options={"n": 3})
    assert done["status"] == "succeeded" and done["result"] == {"mlflow_run_id": "r-1", "final": 0.5}
    assert [c.step for c in acme.list_checkpoints(run.job.id)] == [1]
    assert [e.message for e in acme.list_job_events(run.job.id)][-2:] == ["step 1", "job succeeded"]
    assert acme.audit.verify().ok


def test_a_stage_that_ends_in_failure_keeps_its_result_and_reason(acme):
    run = _open(acme, {"a": 1})
    with pytest.raises(StageFailed):
        run.run(lambda spec, ctx: (_ for _ in ()).throw(StageFailed("divergence: loss is NaN", {"steps": 7})), {})
    job = acme.get_job("acme", run.job.id)
    assert job.status == "failed" and job.error == "divergence: loss is NaN" and job.result == {"steps": 7}


def test_the_failure_cause_is_one_line_and_the_traceback_is_an_event(acme):
    run = _open(acme, {"a": 1})

    def stage(spec, ctx):
        raise RuntimeError("Traceback (most recent call last):\n  File x\nray.exceptions.WorkerCrashedError: died")

    with pytest.raises(LlmftError):
        run.run(stage, {})
    job = acme.get_job("acme", run.job.id)
    assert job.error == "ray.exceptions.WorkerCrashedError: died"
    crash = [e for e in acme.list_job_events(run.job.id) if e.level == "error" and "traceback" in e.data]
    assert crash and "RuntimeError" in crash[0].data["traceback"]


def test_the_recorder_survives_pickling_for_ray_workers(acme):
    run = _open(acme, {"a": 1})
    clone = pickle.loads(pickle.dumps(run.recorder()))
    assert isinstance(clone, StoreRecorder) and clone._store is None  # reopened lazily in the worker
    clone.event("from a worker")
    assert "from a worker" in [e.message for e in acme.list_job_events(run.job.id)]


def test_cancel_refuses_a_finished_job(acme):
    run = _open(acme, {"a": 1})
    run.run(lambda spec, ctx: {}, {})
    with pytest.raises(ConflictError, match="already succeeded"):
        cancel_job(acme, None, acme.get_job("acme", run.job.id), "tester")


def test_unknown_kind_names_the_known_ones():
    with pytest.raises(StageMissing, match="curation, evaluation, sweep, training"):
        kind("pretraining")


def test_training_preflight_refusal_creates_no_job(acme, tiny_base_dir, curated_train_snapshot):
    from llmft.config import TrainingSpec

    acme.add_snapshot(tenant="acme", dataset="support", snapshot_id="snap-acme", uri=str(curated_train_snapshot),
                      classification="internal", row_count=112, kind="curated", actor="t")
    spec = TrainingSpec.model_validate({"name": "dp", "tenant": "acme", "base_model": str(tiny_base_dir),
                                        "dataset": "support", "privacy": {"enabled": True, "target_epsilon": 9.0}})
    with pytest.raises(LlmftError, match="exceed tenant 'acme'"):
        run_job("training", spec, acme, "tester")
    assert acme.find_job("acme", "training", "dp") is None


def test_sweep_preflight_checks_every_trial_like_a_training_job(acme, tiny_base_dir, curated_train_snapshot):
    """Every sampled trial passes the training preflight; one trial the policy refuses refuses the sweep."""
    from llmft.config import SweepSpec

    acme.add_snapshot(tenant="acme", dataset="support", snapshot_id="snap-acme", uri=str(curated_train_snapshot),
                      classification="internal", row_count=112, kind="curated", actor="t")
    training = {"name": "t", "tenant": "acme", "base_model": str(tiny_base_dir), "dataset": "support"}
    good = SweepSpec.model_validate({"name": "sw", "training": training, "num_samples": 2, "search_space": {
        "lora.r": {"type": "choice", "values": [4, 8]}}})
    plan = kind("sweep").preflight(good, acme)
    assert len(plan["trials"]) == 2
    bad = SweepSpec.model_validate({"name": "sw2", "training": training, "num_samples": 2, "search_space": {
        "lora.target_modules": {"type": "choice", "values": [["q_proj"], ["wq"]]}}})
    with pytest.raises(LlmftError, match=r"trial \d .*'wq' is not a module"):
        open_job("sweep", bad, acme, "tester")
    assert acme.find_job("acme", "sweep", "sw2") is None


def test_entrypoint_dry_run_and_one_line_errors(acme, tiny_base_dir, curated_train_snapshot, tmp_path, llmft_home):
    acme.add_snapshot(tenant="acme", dataset="support", snapshot_id="snap-acme", uri=str(curated_train_snapshot),
                      classification="internal", row_count=112, kind="curated", actor="t")
    spec = tmp_path / "t.yaml"
    spec.write_text(f"kind: training\nname: j\ntenant: acme\nbase_model: {tiny_base_dir}\ndataset: support\n")
    env = {"LLMFT_HOME": str(llmft_home), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "llmft.jobs", "training", "--spec", str(spec), "--dry-run", "lora.r=4"],
                         capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout.strip().splitlines()[-1])
    assert plan["dry_run"] and plan["plan"]["dataset"] == "snap-acme"
    assert acme.list_jobs("acme") == []  # a dry run changes nothing
    bad = subprocess.run([sys.executable, "-m", "llmft.jobs", "training", "--spec", str(spec), "lora.r=0"],
                         capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120)
    assert bad.returncode == 1 and bad.stderr.strip().count("\n") == 0 and "lora.r" in bad.stderr


def test_a_job_process_inherits_only_what_it_needs(store, monkeypatch):
    from llmft.jobs.runners import job_env

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "operator-cloud-key")
    monkeypatch.setenv("LLMFT_ALLOW_CALLABLE_SPECS", "1")
    monkeypatch.setenv("LLMFT_SECRETS_FILE", "/etc/llmft/secrets.yaml")
    monkeypatch.setenv("LLMFT_OUTBOUND_ALLOW", "judge.internal:8000")
    training, evaluation = job_env(store, "tester", "training"), job_env(store, "tester", "evaluation")
    for env in (training, evaluation):
        assert "AWS_SECRET_ACCESS_KEY" not in env and "LLMFT_ALLOW_CALLABLE_SPECS" not in env
        assert env["LLMFT_OUTBOUND_ALLOW"] == "judge.internal:8000" and env["LLMFT_ACTOR"] == "tester"
        assert env["LLMFT_DB_URL"].startswith("sqlite:///") and "PATH" in env
    assert "LLMFT_SECRETS_FILE" not in training and evaluation["LLMFT_SECRETS_FILE"] == "/etc/llmft/secrets.yaml"


def test_a_job_cancelled_before_its_process_starts_does_not_run(acme):
    run = _open(acme, {"a": 1})
    run.cancel()
    ran = []
    late = JobRun.attach(acme, run.job.id, "job-process")
    assert late.run(lambda spec, ctx: ran.append(1) or {}, {})["status"] == "cancelled" and ran == []

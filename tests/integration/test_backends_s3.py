"""Object storage: the platform's files in an S3-compatible bucket (moto's server, started by the session).

LLMFT_STORAGE=s3://BUCKET/llmft, LLMFT_S3_ENDPOINT=http://127.0.0.1:PORT, AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY (tests/backend_services.py `s3_storage`). Raw and curated snapshots, Ray
Train checkpoints, registry objects and eval records are written to the bucket (listed with boto3
to prove it); what must be local to run is copied into the cache and re-hashed; a tampered object
in the bucket is refused, named.
"""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.integration


def _wipe_cache() -> None:
    """Drop the local cache, as on a node that has never seen these objects."""
    from llmft.registry.artifacts import make_writable
    from llmft.settings import Settings

    cache = Settings.from_env().storage
    if cache.exists():
        make_writable(cache)
        shutil.rmtree(cache)


def _tamper(s3_storage: dict, key: str) -> None:
    client = s3_storage["server"].client()
    body = client.get_object(Bucket=s3_storage["bucket"], Key=key)["Body"].read()
    client.put_object(Bucket=s3_storage["bucket"], Key=key, Body=body[:-1] + bytes([body[-1] ^ 1]))


def _curated_in_the_bucket(store, curated_train_snapshot) -> None:  # noqa: ANN001
    """The session's curated snapshot as dataset `support`, committed and uploaded as curation does."""
    from llmft import storage
    from llmft.data import snapshots

    staging = snapshots._stage("acme", "support")
    shutil.copyfile(curated_train_snapshot / "part-0.parquet", staging / "part-0.parquet")
    snap_id, path, _ = snapshots.commit(staging, "acme", "support", {"kind": "curated", "format": "parquet"})
    store.add_snapshot(tenant="acme", dataset="support", snapshot_id=snap_id, uri=storage.publish(path),
                       classification="internal", row_count=112, kind="curated", actor="test")


def _register_tickets(store, tmp_path):  # noqa: ANN001, ANN202
    from llmft.config import DatasetSpec
    from llmft.data import snapshots
    from llmft.demo.samples import generate_sample_dataset

    paths = generate_sample_dataset(tmp_path / "sample", seed=0, n_tickets=150)
    store.create_tenant("acme", "admin")
    return snapshots.register(DatasetSpec(name="tickets", tenant="acme", source=str(paths["tickets"]),
                                          subject_field="customer_id"), store, "t")


def test_raw_snapshot_in_the_bucket_opened_from_it_and_a_tampered_object_refused(s3_storage, store, tmp_path):
    """No Ray: register uploads the snapshot; opening it on a fresh node copies it in and re-hashes it."""
    from llmft.data import snapshots
    from llmft.errors import IntegrityError

    raw, summary = _register_tickets(store, tmp_path)
    prefix = f"llmft/datasets/acme/tickets/{raw.id}/"
    assert raw.uri == f"{s3_storage['uri']}/datasets/acme/tickets/{raw.id}" and summary["uri"] == raw.uri
    keys = s3_storage["server"].keys(s3_storage["bucket"], prefix)
    assert prefix + "manifest.json" in keys and any(k.endswith(".jsonl") for k in keys)

    _wipe_cache()  # another node: opened from the bucket, re-hashed against its manifest and id
    opened = snapshots.open_snapshot(store, "acme", "tickets")
    assert opened.manifest.meta["snapshot_id"] == raw.id and snapshots.data_files(opened)

    data_key = next(k for k in keys if k.endswith(".jsonl"))
    _tamper(s3_storage, data_key)
    _wipe_cache()
    with pytest.raises(IntegrityError) as err:
        snapshots.open_snapshot(store, "acme", "tickets")
    message = str(err.value)
    assert f"s3://{s3_storage['bucket']}/{data_key}" in message and "sha256 mismatch" in message
    assert "\n" not in message and "storage-cache" not in message  # one line, naming the object, not the cache


def test_curation_reads_its_source_from_the_bucket_and_writes_the_curated_snapshot_there(
        ray_cluster, s3_storage, store, tmp_path, tiny_base_dir):
    from llmft.config import CurationSpec
    from llmft.data import snapshots
    from llmft.jobs import run_job

    _register_tickets(store, tmp_path)
    _wipe_cache()  # the source snapshot comes from the bucket
    spec = CurationSpec(tenant="acme", source="tickets", output="tickets-curated", tokenizer=str(tiny_base_dir),
                        format={"style": "chat"})
    job = run_job("curation", spec, store, "t", options={"num_blocks": 2})
    assert job["status"] == "succeeded" and job["result"]["rows"] > 0, job
    curated = store.get_snapshot("acme", "tickets-curated")
    cprefix = f"llmft/datasets/acme/tickets-curated/{curated.id}/"
    assert curated.uri == f"{s3_storage['uri']}/datasets/acme/tickets-curated/{curated.id}"
    assert job["result"]["report"] == f"{curated.uri}/report.json"
    keys = set(s3_storage["server"].keys(s3_storage["bucket"], cprefix))
    assert {cprefix + f for f in ("manifest.json", "report.json", "report.html")} <= keys
    assert any(k.endswith(".parquet") for k in keys)
    _wipe_cache()
    opened = snapshots.open_snapshot(store, "acme", "tickets-curated")
    assert opened.manifest.meta["snapshot_id"] == curated.id and any(opened.path.rglob("*.parquet"))


def test_registry_on_s3_register_load_verify_eval_record_and_a_tampered_object_refused(
        s3_storage, registry, tiny_adapters):
    """No Ray: the registry's objects and records in the bucket; `llmft models verify` re-reads them from it."""
    from llmft.cli.main import app
    from llmft.errors import IntegrityError
    from llmft.serving.engine.adapters import verify_adapter
    from llmft.serving.engine.registry_source import RegistryAdapterSource

    lineage = {"base_model": tiny_adapters["base"], "seed": 7, "training_spec": {"method": "lora", "seed": 7}}
    rec = registry.register("acme", "support", tiny_adapters["dirs"][0], actor="alice", lineage=lineage)
    assert rec.uri == f"{s3_storage['uri']}/registry/acme/objects/{rec.manifest_digest}"
    objects = s3_storage["server"].keys(s3_storage["bucket"], f"llmft/registry/acme/objects/{rec.manifest_digest}/")
    assert {k.rsplit("/", 1)[-1] for k in objects} >= {"adapter_model.safetensors", "adapter_config.json",
                                                       "manifest.json"}
    records = s3_storage["server"].keys(s3_storage["bucket"], "llmft/registry/acme/records/support/1/")
    assert records == ["llmft/registry/acme/records/support/1/lineage.json"]
    entry = registry.attach_eval_report("acme", rec.ref, {"passed": True, "reasons": []}, actor="alice")
    assert entry["uri"] == f"{s3_storage['uri']}/registry/acme/records/support/1/eval/1-report.json"
    assert "llmft/registry/acme/records/support/1/eval/1-report.json" in s3_storage["server"].keys(
        s3_storage["bucket"], "llmft/registry/acme/records/")

    cli = CliRunner()
    ok = cli.invoke(app, ["models", "verify", rec.ref, "--tenant", "acme", "--json"])
    assert ok.exit_code == 0 and json.loads(ok.output)["ok"] is True, ok.output
    _wipe_cache()  # a node that never saw it: copied from the bucket, re-hashed, loadable by the engine
    loaded, _ = registry.open("acme", rec.ref)
    assert (loaded / "adapter_model.safetensors").is_file()
    _wipe_cache()
    adapter = RegistryAdapterSource(registry).resolve("acme", "support")
    verify_adapter(adapter)  # the engine's own check, on the cached copy

    weights = next(k for k in objects if k.endswith("adapter_model.safetensors"))
    _tamper(s3_storage, weights)
    bad = cli.invoke(app, ["models", "verify", rec.ref, "--tenant", "acme"])
    assert bad.exit_code != 0 and "adapter_model.safetensors (sha256 mismatch)" in bad.output, bad.output
    assert rec.uri in bad.output
    _wipe_cache()
    with pytest.raises(IntegrityError, match=r"adapter_model.safetensors \(sha256 mismatch\)") as err:
        registry.open("acme", rec.ref)
    assert rec.uri in str(err.value) and "\n" not in str(err.value)
    _wipe_cache()
    with pytest.raises(IntegrityError):  # the engine refuses it too
        verify_adapter(RegistryAdapterSource(registry).resolve("acme", "support"))


def test_registry_on_postgres_the_mlflow_server_and_s3_together(pg_url, mlflow_server, s3_storage, tiny_adapters,
                                                                 monkeypatch):
    """The production settings side by side (no Ray): store on Postgres, tracking/registry on the server, files on S3."""
    from llmft.registry import ModelRegistry

    monkeypatch.setenv("LLMFT_MLFLOW_URI", mlflow_server.uri)
    registry = ModelRegistry()
    registry.store.create_tenant("acme", "admin")
    lineage = {"base_model": tiny_adapters["base"], "seed": 7, "training_spec": {"method": "lora", "seed": 7}}
    rec = registry.register("acme", "support", tiny_adapters["dirs"][1], actor="alice", lineage=lineage)
    assert rec.uri.startswith(f"{s3_storage['uri']}/registry/acme/objects/")
    mv = registry.client.get_model_version("acme.support", "1")
    assert mv.source.startswith("runs:/")  # the server holds its own copy; the platform's object is on S3
    registry.attach_eval_report("acme", rec.ref, {"passed": True, "reasons": []}, actor="alice")
    registry.promote("acme", rec.ref, "staging", reason="eval passed", actor="alice")
    assert registry.resolve("acme", "support@staging").uri == rec.uri
    _wipe_cache()
    assert registry.verify("acme", rec.ref)["ok"] and registry.store.audit.verify().ok
    registry.store.close()


@pytest.mark.slow
def test_training_on_s3_checkpoints_resumes_after_a_kill_then_registers_and_verifies(
        ray_cluster, s3_storage, store, mlflow_db_template, llmft_home, tiny_base_dir, curated_train_snapshot,
        tmp_path):
    from llmft.cli.main import app
    from llmft.errors import LlmftError
    from llmft.jobs import run_job
    from llmft.registry import ModelRegistry
    from tests.integration.test_training import kill_rank1_after, spec

    shutil.copyfile(mlflow_db_template, llmft_home / "mlflow.db")
    store.create_tenant("acme", "admin", epsilon_budget=10.0)
    _curated_in_the_bucket(store, curated_train_snapshot)

    # killed mid-run with no retries left: the job fails; resubmitted, it resumes from its checkpoint on S3
    pid_dir = tmp_path / "pids"
    record: dict = {}
    watcher = kill_rank1_after(pid_dir, 6, record)
    with pytest.raises(LlmftError, match="failed"):
        run_job("training", spec(tiny_base_dir, "run-s3", max_failures=0), store, "tester",
                options={"debug": {"pid_dir": str(pid_dir), "step_delay_s": 0.25}})
    watcher.join(timeout=5)
    assert "killed_at" in record, "the worker was never killed"
    run_prefix = "llmft/train/acme/acme.run-s3/"
    assert run_prefix + "checkpoint_step_000004/manifest.json" in s3_storage["server"].keys(s3_storage["bucket"],
                                                                                           run_prefix)
    _wipe_cache()  # nothing local survives: the resume can only come from the bucket
    done = run_job("training", spec(tiny_base_dir, "run-s3", max_failures=0), store, "tester")
    assert done["status"] == "succeeded" and done["result"]["outcome"]["steps"] == 10
    assert any("resumed from checkpoint_step_000004" in e.message for e in store.list_job_events(done["id"]))
    final = done["result"]["outcome"]["checkpoint"]["uri"]
    assert final == f"{s3_storage['uri']}/train/acme/acme.run-s3/checkpoint_step_000010"
    assert all(c.uri.startswith("s3://") for c in store.list_checkpoints(done["id"]))

    # registered from the job: the version's objects are in the bucket; `llmft models verify` re-hashes them
    cli = CliRunner()
    out = cli.invoke(app, ["models", "register", "support", "--from-job", "run-s3", "--tenant", "acme", "--json"])
    assert out.exit_code == 0, out.output
    rec = ModelRegistry(store=store).resolve("acme", json.loads(out.output)["ref"])
    assert rec.uri == f"{s3_storage['uri']}/registry/acme/objects/{rec.manifest_digest}"
    objects = s3_storage["server"].keys(s3_storage["bucket"], f"llmft/registry/acme/objects/{rec.manifest_digest}/")
    assert any(k.endswith("adapter_model.safetensors") for k in objects)
    assert any(k.endswith("/lineage.json") for k in s3_storage["server"].keys(s3_storage["bucket"],
                                                                               "llmft/registry/acme/records/"))
    ok = cli.invoke(app, ["models", "verify", rec.ref, "--tenant", "acme", "--json"])
    assert ok.exit_code == 0 and json.loads(ok.output)["ok"] is True, ok.output


@pytest.mark.slow
def test_sweep_on_s3_keeps_trials_tune_state_and_the_best_checkpoint_in_the_bucket(
        ray_cluster, s3_storage, store, mlflow_db_template, llmft_home, tiny_base_dir, curated_train_snapshot):
    """On several nodes a trial may run anywhere: its markers, outcome and checkpoints, and Tune's experiment
    state, are written to the bucket, and the best trial is registered from there."""
    from llmft.config import SweepSpec
    from llmft.jobs import run_job
    from llmft.jobs.cluster import ray_session
    from llmft.registry import ModelRegistry
    from tests.integration.test_sweep import TRAINING

    shutil.copyfile(mlflow_db_template, llmft_home / "mlflow.db")
    store.create_tenant("acme", "admin")
    _curated_in_the_bucket(store, curated_train_snapshot)
    spec = SweepSpec.model_validate({
        "name": "s3-sweep", "training": {**TRAINING, "base_model": str(tiny_base_dir)},
        "search_space": {"optim.learning_rate": {"type": "choice", "values": [1e-3, 3e-3]}},
        "num_samples": 2, "max_concurrent": 2, "asha": {"grace_period": 3, "reduction_factor": 2}})
    with ray_session(dashboard=True):
        job = run_job("sweep", spec, store, "tester")
    assert job["status"] == "succeeded", job
    res = job["result"]
    assert res["storage"].startswith(f"{s3_storage['uri']}/sweeps/acme/s3-sweep/")
    prefix = res["storage"].removeprefix(f"s3://{s3_storage['bucket']}/") + "/"
    keys = s3_storage["server"].keys(s3_storage["bucket"], prefix)
    assert sum(k.endswith("/trial.json") for k in keys) == 2, keys
    assert sum(k.endswith("/outcome.json") for k in keys) == 2, keys
    assert any(k.startswith(f"{prefix}tune/") for k in keys), keys  # Tune's experiment state
    assert res["best"]["checkpoint"].startswith(res["storage"])
    _wipe_cache()  # the registered version is read back from the bucket alone
    assert ModelRegistry(store=store).verify("acme", res["registered"]["ref"])["ok"]


def _curate_and_erase(store, tmp_path, after_curation=lambda: None) -> tuple[dict, dict]:  # noqa: ANN001
    """Register tickets + general, curate (replay in, several part files per split), erase one subject."""
    from llmft.config import CurationSpec, DatasetSpec
    from llmft.data import curation, erasure, snapshots
    from llmft.demo.samples import generate_sample_dataset

    paths = generate_sample_dataset(tmp_path / "sample", seed=0, n_tickets=150)
    store.create_tenant("acme", "admin")
    snapshots.register(DatasetSpec(name="tickets", tenant="acme", source=str(paths["tickets"]),
                                   subject_field="customer_id"), store, "t")
    snapshots.register(DatasetSpec(name="general", tenant="acme", source=str(paths["general"]),
                                   classification="public"), store, "t")
    spec = CurationSpec(tenant="acme", source="tickets", output="tickets-curated", format={"style": "alpaca"},
                        replay={"source": "general", "fraction": 0.2})
    curated = curation.run(spec, store, "t", num_blocks=2, rows_per_file=40)
    after_curation()
    subject = json.loads(paths["truth"].read_text())["erasure_subject"]["customer_id"]
    erased = erasure.erase(store, "acme", "tickets-curated", subject, actor="dpo", field="customer_id")
    return curated, erased


def test_workers_write_curated_and_erased_files_straight_to_the_bucket_with_the_local_snapshot_ids(
        ray_cluster, s3_storage, store, tmp_path, monkeypatch):
    """Several nodes: each worker uploads the part files it writes (hashed as written) to a staging prefix in the
    bucket; nothing is staged on the driver's disk, and the snapshot ids equal those of local storage."""
    import ray

    from llmft.data import parts, snapshots
    from llmft.settings import Settings
    from llmft.store import Store

    def nothing_on_the_driver_disk() -> None:  # (erasure then reads the curated snapshot through the cache)
        cache = Settings.from_env().storage
        assert not list(cache.rglob("*.parquet")) and not list(cache.rglob(".staging-*"))

    ray.data.DataContext.get_current().enable_progress_bars = False
    curated, erased = _curate_and_erase(store, tmp_path / "s3", nothing_on_the_driver_disk)
    cid, eid = curated["snapshot"]["id"], erased["snapshot"]["id"]
    assert curated["snapshot"]["uri"] == f"{s3_storage['uri']}/datasets/acme/tickets-curated/{cid}"
    assert erased["snapshot"]["uri"] == f"{s3_storage['uri']}/datasets/acme/tickets-curated/{eid}"
    keys = s3_storage["server"].keys(s3_storage["bucket"], "llmft/datasets/acme/tickets-curated/")
    assert not [k for k in keys if ".staging-" in k], keys  # the staging prefix is gone
    assert sum(k.startswith(f"llmft/datasets/acme/tickets-curated/{cid}/train-") for k in keys) > 1
    _wipe_cache()  # read back from the bucket alone: every file re-hashed against the manifest, digest == id
    opened = snapshots.open_snapshot(store, "acme", cid)
    assert opened.meta["snapshot_id"] == cid and set(opened.meta["files"]) == {p.name for p in parts.files(opened.path)}
    assert {"report.json", "report.html"} <= set(opened.manifest.files)
    assert parts.read_table(opened.path).num_rows == curated["rows"]
    assert snapshots.open_snapshot(store, "acme", eid).record.row_count == curated["rows"] - erased["removed"]

    monkeypatch.setenv("LLMFT_HOME", str(tmp_path / "local-home"))  # the same work on local storage
    monkeypatch.delenv("LLMFT_STORAGE")
    local_store = Store()
    try:
        local_curated, local_erased = _curate_and_erase(local_store, tmp_path / "local")
    finally:
        local_store.close()
    assert not local_curated["snapshot"]["uri"].startswith("s3://")
    assert (local_curated["snapshot"]["id"], local_erased["snapshot"]["id"]) == (cid, eid)

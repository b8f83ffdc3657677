"""Tracking and the model registry through an `mlflow server` (Postgres backend store, artifacts served by it).

The server is started by the session (tests/backend_services.py) with
`--backend-store-uri postgresql+psycopg://.../mlflow --serve-artifacts --artifacts-destination DIR`;
the platform's metadata store is another database on the same cluster. Clients never write
artifacts to DIR themselves: everything goes through the server's HTTP API.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner



@pytest.fixture
def server_env(pg_url, mlflow_server, monkeypatch):  # noqa: F811
    monkeypatch.setenv("LLMFT_MLFLOW_URI", mlflow_server.uri)
    from llmft.settings import Settings

    return Settings.from_env().ensure_dirs()


def _spec(tenant: str, name: str):  # noqa: ANN202
    from llmft.config import TrainingSpec

    return TrainingSpec(name=name, tenant=tenant, base_model="tiny", dataset="tickets-curated")


def _server_files(server, run_id: str) -> list[str]:  # noqa: ANN001
    """Every file the server's artifact store holds for `run_id` (relative to the run's artifacts)."""
    return sorted(str(p.relative_to(d)) for d in server.artifacts.rglob(f"{run_id}/artifacts") for p in d.rglob("*")
                  if p.is_file())


def test_training_run_tracks_params_metrics_and_artifacts_through_the_server(server_env, mlflow_server, tmp_path):  # noqa: F811
    from llmft.train import tracking

    spec = _spec("acme", "run-srv")
    run_id = tracking.start_run(server_env.mlflow_uri, server_env.storage, spec, {"dataset_snapshot": "abc"})
    tracker = tracking.Tracker(server_env.mlflow_uri, run_id)
    for step, loss in enumerate([2.0, 1.5, 1.1], start=1):
        tracker.log_metrics({"loss": loss, "val_loss": loss + 0.1 if step == 3 else None}, step)
    tracking.finish_run(server_env.mlflow_uri, run_id, {"status": "succeeded", "steps": 3, "best_val_loss": 1.2},
                        tmp_path)
    client = tracking.mlflow_client(server_env.mlflow_uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.artifact_uri.startswith("mlflow-artifacts:/")
    assert run.data.params["method"] == "lora" and run.data.tags["llmft.dataset_snapshot"] == "abc"
    assert [m.value for m in client.get_metric_history(run_id, "loss")] == [2.0, 1.5, 1.1]
    assert [a.path for a in client.list_artifacts(run_id)] == ["loss_curve.png"]
    assert _server_files(mlflow_server, run_id) == ["loss_curve.png"]  # it went through the server
    assert not (server_env.storage / "mlflow-artifacts").exists()  # nothing written beside it on the client
    again = tracking.start_run(server_env.mlflow_uri, server_env.storage, _spec("acme", "run-srv-2"), {})
    assert client.get_run(again).info.experiment_id == run.info.experiment_id


def test_registry_versions_aliases_and_eval_reports_through_the_server(server_env, mlflow_server, tiny_adapters,  # noqa: F811
                                                                        tmp_path):
    from llmft.cli.main import app
    from llmft.registry import ModelRegistry
    from llmft.store import Store
    from llmft.train import tracking

    store = Store()
    assert store.engine.dialect.name == "postgresql"
    store.create_tenant("globex", "admin")
    registry = ModelRegistry(store=store, settings=server_env)
    run_id = tracking.start_run(server_env.mlflow_uri, server_env.storage, _spec("globex", "train-1"), {})
    lineage = {"base_model": tiny_adapters["base"], "seed": 7, "metrics": {"val_loss": 1.5}, "mlflow_run_id": run_id}
    v1 = registry.register("globex", "support", tiny_adapters["dirs"][0], actor="alice", lineage=lineage)
    v2 = registry.register("globex", "support", tiny_adapters["dirs"][1], actor="alice",
                           lineage={**lineage, "mlflow_run_id": None})  # no training run: a registry run carries it
    assert (v1.version, v2.version) == (1, 2)
    assert registry.register("globex", "support", tiny_adapters["dirs"][0], actor="alice", lineage=lineage).version == 1

    client = registry.client
    mv1 = client.get_model_version("globex.support", "1")
    assert mv1.run_id == run_id and mv1.source == f"runs:/{run_id}/registry/support/{v1.manifest_digest[:16]}"
    files = _server_files(mlflow_server, run_id)
    assert "registry/support/1/lineage.json" in files
    assert {f"registry/support/{v1.manifest_digest[:16]}/{name}" for name in v1.lineage["artifacts"]["files"]} <= set(files)
    mv2 = client.get_model_version("globex.support", "2")
    assert mv2.run_id != run_id and mv2.source.startswith(f"runs:/{mv2.run_id}/")

    html = tmp_path / "report.html"
    html.write_text("<html>ok</html>")
    registry.attach_eval_report("globex", "support:1", {"passed": True, "reasons": [], "metrics": {"acc": 0.9}},
                                actor="eval", html_path=html)
    assert {"registry/support/1/eval/1-report.json", "registry/support/1/eval/1-report.html"} <= \
        set(_server_files(mlflow_server, run_id))
    registry.promote("globex", "support:1", "staging", reason="gates passed", actor="bob")
    registry.promote("globex", "support:2", "candidate", reason="try", actor="bob")
    assert client.get_model_version_by_alias("globex.support", "staging").version == "1"
    assert client.get_model_version_by_alias("globex.support", "candidate").version == "2"
    assert client.get_model_version("globex.support", "1").tags["llmft.eval.passed"] == "True"
    assert registry.resolve("globex", "support@staging").version == 1

    def models(*args: str):  # noqa: ANN202 - `llmft models ...` in this process (env names Postgres + the server)
        return CliRunner().invoke(app, ["models", *args, "--tenant", "globex"])

    res = models("verify", "support@staging", "--json")
    assert res.exit_code == 0 and json.loads(res.output)["ok"] is True
    stored = Path(v1.uri) / "tokenizer.json"  # the platform's object, not MLflow's copy, is what verify hashes
    stored.chmod(0o644)
    stored.write_text("{}")
    res = models("verify", "support@staging")
    assert res.exit_code == 1 and "tokenizer.json (sha256 mismatch)" in res.output
    assert store.audit.verify().ok
    store.close()

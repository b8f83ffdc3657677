"""CLI parity: the same `llmft` commands go through a real HTTP server when LLMFT_API_URL is set."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.control_fixtures import training_spec
from tests.http_server import http_server


@pytest.fixture
def served(api, monkeypatch):
    """The fixture's app on a real uvicorn server in a thread; the CLI pointed at it with acme's admin key."""
    with http_server(api.client.app) as url:
        monkeypatch.setenv("LLMFT_API_URL", url)
        monkeypatch.setenv("LLMFT_API_KEY", api.keys[("acme", "admin")])
        yield api


def cli(*args: str) -> tuple[int, str]:
    from llmft.cli.main import app

    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_tenants_and_keys_commands_go_through_the_api(served):
    code, out = cli("tenants", "list", "--json")
    assert code == 0 and [t["name"] for t in json.loads(out)] == ["acme"]  # scoped: only the key's tenant
    code, out = cli("keys", "create", "--tenant", "acme", "--role", "viewer", "--json")
    new = json.loads(out)
    assert code == 0 and new["key"].startswith("llmft_")
    admin_id = served.keys[("acme", "admin")].split("_")[1]
    made = [r for r in served.store.audit.records("acme") if r["action"] == "key.create"][-1]
    assert made["actor"] == f"key:{admin_id}:admin"  # acted as the API key, not the local user
    code, out = cli("keys", "list", "--tenant", "acme", "--json")
    assert new["id"] in {k["id"] for k in json.loads(out)}
    code, out = cli("keys", "revoke", new["id"], "--tenant", "acme", "--json")
    assert code == 0 and json.loads(out)["revoked_at"]
    code, out = cli("keys", "list", "--tenant", "globex", "--json")
    assert code == 1 and "tenant 'globex' not found" in out


def test_job_and_data_actions_have_the_same_shape_through_api_and_library(served, monkeypatch):
    from llmft.cli import backend
    from llmft.control.client import ApiClient

    client = ApiClient.from_env()
    job = client.post("/tenants/acme/training-jobs", {"spec": training_spec("cli-run")})
    served.wait("acme", "training-jobs", job["id"])
    remote = {"status": backend.job_status("acme", "training", "cli-run"),
              "list": backend.job_list("acme", "training"),
              "events": backend.job_events("acme", "training", "cli-run"),
              "checkpoints": backend.job_checkpoints("acme", "training", "cli-run"),
              "data": backend.data_list("acme"), "models": backend.models_list("acme")}
    assert remote["status"]["status"] == "succeeded" and len(remote["checkpoints"]) == 2
    monkeypatch.delenv("LLMFT_API_URL")
    local = {"status": backend.job_status("acme", "training", "cli-run"),
             "list": backend.job_list("acme", "training"),
             "events": backend.job_events("acme", "training", "cli-run"),
             "checkpoints": backend.job_checkpoints("acme", "training", "cli-run"),
             "data": backend.data_list("acme")}
    for key, value in local.items():
        assert remote[key] == value, key


def test_cancel_through_the_api_and_errors_keep_their_type(served):
    from llmft.cli import backend
    from llmft.control.client import ApiClient
    from llmft.errors import ConflictError, NotFoundError, PermissionDeniedError

    client = ApiClient.from_env()
    job = client.post("/tenants/acme/training-jobs", {"spec": training_spec("slow-cli")})
    assert backend.job_cancel("acme", "training", job["id"], "ignored")["status"] == "cancelled"
    with pytest.raises(ConflictError, match="already cancelled"):
        backend.job_cancel("acme", "training", job["id"], "ignored")
    with pytest.raises(NotFoundError, match="not found"):
        backend.job_status("globex", "training", job["id"])
    bad = ApiClient(client.base_url, "llmft_x_forged")
    with pytest.raises(PermissionDeniedError, match="invalid or revoked"):
        bad.get("/tenants/acme/datasets")


def test_api_request_command_calls_any_route(served):
    code, out = cli("api", "request", "GET", "/tenants/acme", "--json")
    assert code == 0 and json.loads(out)["name"] == "acme"
    code, out = cli("api", "request", "POST", "/tenants/acme/keys", "--body", "{not json")
    assert code == 1 and "--body: not valid JSON" in out

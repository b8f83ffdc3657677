"""`llmft serve up --dry-run` and `llmft deploy create --dry-run`: specs resolve to a Serve config / plan."""

import json

import yaml
from typer.testing import CliRunner

from llmft.cli.main import app
from llmft.config import DeploymentSpec, load_spec
from tests.conftest import REPO_ROOT

SPEC = REPO_ROOT / "serve_apps" / "deploy_support.yaml"


def test_example_spec_validates():
    assert isinstance(load_spec(SPEC), DeploymentSpec)


def test_serve_config_yaml_matches_builder_args():
    from llmft.serving.app_config import IMPORT_PATH, AppArgs

    cfg = yaml.safe_load((REPO_ROOT / "serve_apps" / "llm_serve_config.yaml").read_text())
    (appcfg,) = cfg["applications"]
    assert appcfg["import_path"] == IMPORT_PATH == "llmft.serving.app:build_app"
    AppArgs(**appcfg["args"])
    assert {d["name"] for d in appcfg["deployments"]} == {"Gateway", "blue", "green"}


def test_serve_config_needs_only_the_installed_package(monkeypatch):
    """The generated config names the builder inside the package and passes only LLMFT_* settings
    (no PYTHONPATH pointing into a checkout)."""
    from llmft.serving.app_config import AppArgs, serve_config

    monkeypatch.setenv("LLMFT_HOME", "/srv/llmft")
    monkeypatch.setenv("PYTHONPATH", "/somewhere/else")
    cfg = serve_config("llm", AppArgs(base_model="tiny"), {})
    (appcfg,) = cfg["applications"]
    assert appcfg["import_path"] == "llmft.serving.app:build_app"
    env = appcfg["runtime_env"]["env_vars"]
    assert env["LLMFT_HOME"] == "/srv/llmft" and all(k.startswith("LLMFT_") for k in env)


def test_dry_runs_resolve_the_version(serving_adapters):
    runner = CliRunner()
    over = [f"adapter_source=dir:{serving_adapters['root']}", f"base_model={serving_adapters['base']}",
            "model=support@production"]
    res = runner.invoke(app, ["serve", "up", "--spec", str(SPEC), "--dry-run", "--json", *over])
    assert res.exit_code == 0, res.output
    cfg = json.loads(res.output)
    gateway = cfg["applications"][0]["deployments"][0]
    assert gateway["user_config"]["traffic"]["colours"]["blue"]["pins"] == {"acme/support": "1"}
    assert cfg["http_options"] == {"host": "127.0.0.1", "port": 8000}
    res = runner.invoke(app, ["deploy", "create", "--spec", str(SPEC), "--dry-run", "--json", *over[:2],
                              "model=support:2"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["plan"]["version"] == "2"
    res = runner.invoke(app, ["deploy", "create", "--spec", str(SPEC), "--dry-run", *over[:2], "model=nope"])
    assert res.exit_code == 1 and "nope" in res.output

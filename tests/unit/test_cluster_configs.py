"""Cluster configs are tied to the code: entrypoints, specs, Serve import paths and resources."""

from __future__ import annotations

import ast
import re
import shlex

import pytest
import yaml

from llmft.config import load_spec
from tests.conftest import REPO_ROOT

CONFIGS = REPO_ROOT / "cluster_configs"


def load(name: str) -> dict:
    return yaml.safe_load((CONFIGS / name).read_text())


def import_target_exists(import_path: str) -> bool:
    """`llmft.serving.app:build_app` names a module of the package (under platform/) defining that function."""
    module, _, attr = import_path.partition(":")
    path = REPO_ROOT / "platform" / (module.replace(".", "/") + ".py")
    if not module.startswith("llmft.") or not path.is_file():
        return False
    names = {n.name for n in ast.parse(path.read_text()).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    return attr in names


def check_entrypoint(command: str) -> None:
    """`python -m llmft.jobs <kind> --spec FILE overrides...`: a known kind whose spec validates with the overrides."""
    from llmft.jobs import KINDS

    argv = shlex.split(command)
    assert argv[:3] == ["python", "-m", "llmft.jobs"] and argv[3] in KINDS, command
    if "--spec" in argv:
        spec_path = REPO_ROOT / argv[argv.index("--spec") + 1]
        overrides = [a for a in argv[argv.index("--spec") + 2:] if "=" in a]
        assert load_spec(spec_path, overrides, expect=KINDS[argv[3]].spec_type)


@pytest.mark.parametrize("name", ["ray-up-local.yaml", "ray-up-aws.yaml"])
def test_ray_up_configs_install_llmft_and_start_ray(name):
    cfg = load(name)
    assert cfg["cluster_name"].startswith("llmft")
    setup = " ".join(cfg["setup_commands"])
    assert "torch==2.13.0" in setup and "[train,serve]" in setup
    assert any("ray start --head" in c for c in cfg["head_start_ray_commands"])
    assert "." in cfg["file_mounts"].values()


def test_aws_gpu_node_types_are_reachable():
    cfg = load("ray-up-aws.yaml")
    types = cfg["available_node_types"]
    assert cfg["head_node_type"] in types
    assert sum(t.get("max_workers", 0) for t in types.values()) <= cfg["max_workers"] + 4


def test_rayjob_entrypoint_and_gpu_resources():
    job = load("kuberay/rayjob-train.yaml")
    assert job["kind"] == "RayJob"
    check_entrypoint(job["spec"]["entrypoint"])
    for group in job["spec"]["rayClusterSpec"]["workerGroupSpecs"]:
        container = group["template"]["spec"]["containers"][0]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == group["rayStartParams"]["num-gpus"]
    assert "use_gpu=true" in job["spec"]["entrypoint"]


def test_raycluster_gpu_groups_match_ray_start_params():
    cluster = load("kuberay/raycluster.yaml")
    assert cluster["spec"]["rayVersion"] == "2.60.0"
    for group in cluster["spec"]["workerGroupSpecs"]:
        limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert limits.get("nvidia.com/gpu") == group["rayStartParams"].get("num-gpus")


def test_rayservice_serves_the_same_app_as_the_serve_config():
    service = load("kuberay/rayservice-llm.yaml")
    serve_cfg = yaml.safe_load(service["spec"]["serveConfigV2"])
    local = yaml.safe_load((REPO_ROOT / "serve_apps" / "llm_serve_config.yaml").read_text())
    for app, local_app in zip(serve_cfg["applications"], local["applications"], strict=True):
        assert import_target_exists(app["import_path"])
        assert app["import_path"] == local_app["import_path"] and app["name"] == local_app["name"]
        assert set(app["args"]) == set(local_app["args"])  # same builder arguments
        assert [d["name"] for d in app["deployments"]] == [d["name"] for d in local_app["deployments"]]
        gpus = {d["name"]: d.get("ray_actor_options", {}).get("num_gpus", 0) for d in app["deployments"]}
        assert gpus["blue"] == gpus["green"] == app["args"]["replica_gpus"] == 1
    workers = service["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    assert sum(int(g["replicas"]) for g in workers) >= sum(
        d.get("num_replicas", 0) for d in serve_cfg["applications"][0]["deployments"])


def test_serve_configs_accepted_by_serve_schema():
    from ray.serve.schema import ServeDeploySchema

    for path in (REPO_ROOT / "serve_apps").glob("*serve_config*.yaml"):
        ServeDeploySchema.model_validate(yaml.safe_load(path.read_text()))
    ServeDeploySchema.model_validate(yaml.safe_load(load("kuberay/rayservice-llm.yaml")["spec"]["serveConfigV2"]))


def test_dockerfile_installs_the_repo_with_pinned_torch():
    text = (CONFIGS / "Dockerfile").read_text()
    assert re.search(r"FROM rayproject/ray:2\.60\.0", text) and "torch==2.13.0" in text

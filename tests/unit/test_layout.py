"""The house layout: `platform/` must never shadow the stdlib module of the same name."""

import platform
import subprocess
import sys
import tomllib

from tests.conftest import REPO_ROOT


def test_stdlib_platform_is_not_shadowed_from_repo_root():
    out = subprocess.run(
        [sys.executable, "-c", "import platform; print(platform.system()); import llmft; print(llmft.__version__)"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()
    assert out[0] == platform.system() and out[0] != ""
    assert out[1]


def test_platform_is_a_source_root_not_a_package():
    assert not (REPO_ROOT / "platform" / "__init__.py").exists()
    assert (REPO_ROOT / "platform" / "llmft" / "__init__.py").exists()


def test_top_level_layout_and_packaging():
    for name in ("pyproject.toml", "README.md", "platform", "jobs", "serve_apps", "cluster_configs",
                 "tests", "notebooks", "Makefile", "benchmarks", ".ci"):
        assert (REPO_ROOT / name).exists(), name
    meta = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert meta["project"]["scripts"]["llmft"] == "llmft.cli.main:main"
    assert {"train", "serve", "dev"} <= set(meta["project"]["optional-dependencies"])
    assert "torch==2.13.0" in meta["project"]["dependencies"]  # never a looser pin: it pulls a CUDA build


def test_demo_specs_ship_as_package_data_equal_to_the_examples():
    """The demo reads its specs from the package (a non-editable install has no jobs/); they are the examples."""
    packaged = REPO_ROOT / "platform" / "llmft" / "demo" / "specs"
    examples = {p.name: p for p in (REPO_ROOT / "jobs" / "specs").glob("*.yaml")}
    examples.update({p.name: p for p in (REPO_ROOT / "serve_apps").glob("deploy_*.yaml")})
    shipped = sorted(packaged.glob("*.yaml"))
    assert {p.name for p in shipped} >= {"curate-tickets.yaml", "dataset-tickets.yaml", "dataset-triage.yaml",
                                         "curate-triage.yaml", "train-triage.yaml", "eval-triage.yaml",
                                         "deploy_triage.yaml"}
    for path in shipped:
        assert path.name in examples, f"{path.name}: no user-facing example of that name"
        assert path.read_bytes() == examples[path.name].read_bytes(), (
            f"{path} differs from {examples[path.name]}: copy the example over the packaged one")
    meta = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert "demo/specs/*.yaml" in meta["tool"]["setuptools"]["package-data"]["llmft"]


def test_demo_entrypoint_lives_in_the_package():
    out = subprocess.run([sys.executable, "-m", "llmft.demo", "--help"], cwd=REPO_ROOT / "tests",
                         capture_output=True, text=True, check=True).stdout
    assert "--tickets" in out and "--only" in out

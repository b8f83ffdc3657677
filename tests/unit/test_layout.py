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

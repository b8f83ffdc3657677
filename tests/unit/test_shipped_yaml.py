"""Every YAML shipped in the repo parses; every spec under jobs/ validates against the schema."""

import pytest
import yaml

from llmft.config import load_spec
from tests.conftest import REPO_ROOT

SHIPPED = sorted(p for d in ("jobs", "serve_apps", "cluster_configs", "notebooks", "benchmarks")
                 for p in (REPO_ROOT / d).rglob("*.y*ml"))
SPECS = [p for p in SHIPPED if p.is_relative_to(REPO_ROOT / "jobs")]


def test_there_are_example_specs():
    assert len(SPECS) >= 3


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_yaml_parses(path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs and all(isinstance(d, dict) for d in docs)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_job_spec_validates(path):
    spec = load_spec(path)
    assert spec.kind

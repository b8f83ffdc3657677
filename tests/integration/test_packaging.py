"""A non-editable install runs jobs and serving: a wheel installed in a fresh venv, used from outside the repo.

The fresh venv borrows the test venv's third-party packages through a path entry (a `.pth` line is
not scanned for further `.pth` files, so the editable llmft of the test venv stays out of it); llmft
itself comes only from the wheel. Every command runs with the repo neither the working directory
nor on the path, so anything that reached into jobs/ or serve_apps/ by file would fail here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("wheel-install")
    dist = root / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
                    str(REPO_ROOT)], check=True, cwd=root)
    wheel = next(dist.glob("llmft-*.whl"))
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], check=True,
                   cwd=root)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "borrowed_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    home = root / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LLMFT_", "RAY_"))}
    env.update(LLMFT_HOME=str(home), PATH=f"{env_dir / 'bin'}:{env['PATH']}")
    return {"python": str(python), "bin": env_dir / "bin", "env": env, "cwd": root}


def _run(installed: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=installed["cwd"], env=installed["env"], capture_output=True, text=True,
                          timeout=300)


def test_llmft_comes_from_the_wheel_not_the_repo(installed):
    out = _run(installed, installed["python"], "-c", "import llmft, json; print(json.dumps(llmft.__file__))")
    assert out.returncode == 0, out.stderr
    location = json.loads(out.stdout)
    assert "site-packages" in location and not location.startswith(str(REPO_ROOT)), location


def test_every_job_kind_and_the_serve_app_import_from_the_install(installed):
    code = ("import importlib, json\n"
            "from llmft.jobs import KINDS\n"
            "from llmft.serving.app_config import IMPORT_PATH\n"
            "module, _, attr = IMPORT_PATH.partition(':')\n"
            "builder = getattr(importlib.import_module(module), attr)\n"
            "print(json.dumps({'kinds': sorted(KINDS), 'import_path': IMPORT_PATH, 'callable': callable(builder)}))")
    out = _run(installed, installed["python"], "-c", code)
    assert out.returncode == 0, out.stderr[-2000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found == {"kinds": ["curation", "evaluation", "sweep", "training"],
                     "import_path": "llmft.serving.app:build_app", "callable": True}


def test_a_job_dry_run_from_the_installed_entrypoint(installed, tmp_path):
    rows = tmp_path / "inbox" / "pairs.jsonl"
    rows.parent.mkdir()
    rows.write_text("".join(json.dumps({"id": f"r{i}", "prompt": f"How do I reset device {i}?",
                                        "response": f"Hold the button on device {i} for ten seconds."}) + "\n"
                            for i in range(20)))
    dataset = tmp_path / "dataset.yaml"
    dataset.write_text(f"kind: dataset\nname: pairs\ntenant: acme\nsource: {rows}\nformat: jsonl\n"
                       "classification: internal\nlicense_class: proprietary\npurpose: fine-tuning\n")
    curation = tmp_path / "curate.yaml"
    curation.write_text("kind: curation\ntenant: acme\nsource: pairs\noutput: pairs-curated\n"
                        "format: {style: alpaca}\n")
    llmft = str(installed["bin"] / "llmft")
    assert _run(installed, llmft, "tenants", "create", "acme").returncode == 0
    reg = _run(installed, llmft, "data", "register", "--spec", str(dataset), "--json")
    assert reg.returncode == 0, reg.stdout + reg.stderr
    plan = _run(installed, installed["python"], "-m", "llmft.jobs", "curation", "--spec", str(curation), "--dry-run")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    body = json.loads(plan.stdout.strip().splitlines()[-1])
    assert body["dry_run"] is True and body["kind"] == "curation" and body["plan"]["output"] == "pairs-curated"
    refused = _run(installed, installed["python"], "-m", "llmft.jobs", "training", "--spec", str(curation))
    assert refused.returncode == 1 and refused.stderr.strip().startswith("error:")
    assert "Traceback" not in refused.stderr  # one line, not a stack

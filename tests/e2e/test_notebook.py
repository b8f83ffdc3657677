"""notebooks/quickstart.ipynb runs top to bottom against the local platform (nbclient)."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.e2e]


def test_quickstart_notebook_executes(tmp_path, monkeypatch, tiny_base_dir):
    import nbformat
    from nbclient import NotebookClient

    home = tmp_path / "nb-home"
    shutil.copytree(tiny_base_dir, home / "storage" / "models" / "tiny")
    monkeypatch.setenv("LLMFT_HOME", str(home))
    monkeypatch.setenv("QUICKSTART_TRAIN", "optim.max_steps=60")  # the walk-through, not the recipe (the demo test)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    nb = nbformat.read(REPO_ROOT / "notebooks" / "quickstart.ipynb", as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(REPO_ROOT)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    html = [o for o in outputs if "text/html" in o.get("data", {})]
    assert images, "the loss curve is shown inline"
    assert len(html) >= 2, "the curation and eval reports are shown inline"
    assert "'ok': True" in str(outputs[-1]) or any("'ok': True" in str(o) for o in outputs)

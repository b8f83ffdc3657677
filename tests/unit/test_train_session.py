"""A whole training worker as one plain process (LocalRuntime): determinism, exact resume, guards, formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmft.config.training import TrainingSpec
from llmft.train import checkpointing as ck
from llmft.train.runtime import LocalRuntime
from llmft.train.worker import Session


def run(base, snap, run_dir, debug=None, **kw):
    data = {"name": "t", "tenant": "acme", "base_model": str(base), "dataset": "d", "method": "lora",
            "optim": {"max_steps": 8, "batch_size": 4, "learning_rate": 3e-3},
            "data": {"max_seq_len": 128, "packing": True, "validation_every": 4},
            "checkpoint": {"every_n_steps": 4, "keep_last": 2}, "resources": {"num_workers": 1}}
    for key, value in kw.items():
        data[key] = {**data[key], **value} if isinstance(data.get(key), dict) else value
    spec = TrainingSpec.model_validate(data)
    rt = LocalRuntime(snap, run_dir)
    out = Session({"spec": spec.model_dump(mode="json"), "run_uri": str(run_dir), "debug": debug or {}}, rt).run()
    return out, rt


def test_same_seed_same_adapter_and_exact_resume(tiny_base_dir, curated_train_snapshot, tmp_path):
    a, rt = run(tiny_base_dir, curated_train_snapshot, tmp_path / "a")
    assert a["status"] == "succeeded" and a["steps"] == 8
    final = Path(a["checkpoint"]["uri"])
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in (final / "adapter").iterdir()}
    assert json.loads((final / "state.json").read_text())["step"] == 8
    ck.load(final)  # manifest verifies
    b, _ = run(tiny_base_dir, curated_train_snapshot, tmp_path / "b")
    assert b["checkpoint"]["weights_sha256"] == a["checkpoint"]["weights_sha256"]  # bit-identical on CPU
    # interrupted after the step-4 checkpoint, then resumed: the same bits as the uninterrupted run
    c1, _ = run(tiny_base_dir, curated_train_snapshot, tmp_path / "c", debug={"stop_at_step": 6})
    assert c1["status"] == "interrupted" and c1["steps"] == 6
    c2, _ = run(tiny_base_dir, curated_train_snapshot, tmp_path / "c")
    assert c2["steps"] == 8 and c2["checkpoint"]["weights_sha256"] == a["checkpoint"]["weights_sha256"]
    d, _ = run(tiny_base_dir, curated_train_snapshot, tmp_path / "d", seed=1)
    assert d["checkpoint"]["weights_sha256"] != a["checkpoint"]["weights_sha256"]

    # a checkpoint failing its hash is skipped for the previous good one
    weights = ck.weights_path(final)
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0xFF
    weights.write_bytes(bytes(raw))
    skipped = []
    loaded = ck.latest_good([u for _, u in ck.list_checkpoints(str(tmp_path / "a"))], log=skipped.append)
    assert loaded.state.step == 4 and "sha256 mismatch" in skipped[0]


def test_divergence_rolls_back_once_then_stops(tiny_base_dir, curated_train_snapshot, tmp_path):
    ok, _ = run(tiny_base_dir, curated_train_snapshot, tmp_path / "r", debug={"inject_nan_at": [5]})
    assert ok["status"] == "succeeded" and ok["rollbacks"] == 1 and ok["steps"] == 8
    state = json.loads((Path(ok["checkpoint"]["uri"]) / "state.json").read_text())
    assert state["lr_scale"] == pytest.approx(0.5)
    bad, _ = run(tiny_base_dir, curated_train_snapshot, tmp_path / "s", debug={"inject_nan_at": [5, 6]})
    assert bad["status"] == "failed" and "diverged after rollback" in bad["reason"] and "NaN" in bad["reason"]


@pytest.mark.parametrize("method,weights", [("full", "model/model.safetensors"),
                                            ("prompt_tuning", "adapter/adapter_model.safetensors")])
def test_full_and_prompt_tuning(tiny_base_dir, curated_train_snapshot, tmp_path, method, weights):
    out, _ = run(tiny_base_dir, curated_train_snapshot, tmp_path / method, method=method,
                 optim={"max_steps": 2, "learning_rate": 1e-3}, data={"packing": False},
                 checkpoint={"every_n_steps": 2})
    assert out["status"] == "succeeded" and (Path(out["checkpoint"]["uri"]) / weights).is_file()
    ck.load(Path(out["checkpoint"]["uri"]))


def test_qlora_on_cpu(tiny_base_dir, curated_train_snapshot, tmp_path):
    """bitsandbytes nf4 + double quantisation trains on CPU here (fp32 compute: this CPU emulates bf16)."""
    out, _ = run(tiny_base_dir, curated_train_snapshot, tmp_path / "q", method="qlora",
                 quantization={"compute_dtype": "float32"}, optim={"max_steps": 2}, checkpoint={"every_n_steps": 2})
    assert out["status"] == "succeeded"
    assert (Path(out["checkpoint"]["uri"]) / "adapter" / "adapter_model.safetensors").is_file()

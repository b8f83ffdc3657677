"""Loading and exporting registered versions: verified adapter, checked base, merged safetensors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from llmft.errors import ConflictError, IntegrityError


def _register(registry, tiny_adapters, src=None):
    return registry.register("acme", "support", src or tiny_adapters["dirs"][0], actor="a",
                             lineage={"base_model": tiny_adapters["base"], "training_spec": {"method": "lora"}})


def _logits(model, tokenizer):
    import torch

    ids = tokenizer("How do I reset my password?", return_tensors="pt").input_ids
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_export_adapter_loads_with_peft_and_merged_matches(registry, tiny_adapters, tiny_base_dir, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from llmft.models.loading import load_base
    from llmft.registry.export import export_adapter, export_merged, load_version

    _register(registry, tiny_adapters)
    model, tokenizer, rec = load_version(registry, "acme", "support:1")
    reference = _logits(model, tokenizer)
    base, _, _ = load_base(tiny_base_dir)
    assert not torch.allclose(_logits(base, tokenizer), reference, atol=1e-4)  # the adapter changes outputs

    out = export_adapter(registry, "acme", "support:1", tmp_path / "adapter")
    assert Path(out["path"], "llmft_version.json").is_file() and out["semver"] == "1.0.0"
    loaded = PeftModel.from_pretrained(load_base(tiny_base_dir)[0], out["path"]).eval()
    assert torch.allclose(_logits(loaded, tokenizer), reference, atol=1e-5)

    merged = export_merged(registry, "acme", "support:1", tmp_path / "merged")
    assert "model.safetensors" in merged["files"]
    full = AutoModelForCausalLM.from_pretrained(merged["path"]).eval()
    assert not any("lora" in name for name, _ in full.named_parameters())
    assert torch.allclose(_logits(full, tokenizer), reference, atol=1e-4)
    with pytest.raises(ConflictError, match="not empty"):
        export_adapter(registry, "acme", "support:1", tmp_path / "merged")


def test_tampered_adapter_and_swapped_base_are_refused(registry, tiny_adapters, tiny_base_dir, tmp_path):
    from llmft.models.loading import model_identity
    from llmft.registry.export import export_adapter, load_version

    # a base whose files differ from the identity the version was trained on
    other_base = tmp_path / "base-copy"
    shutil.copytree(tiny_base_dir, other_base)
    (other_base / "generation_config.json").chmod(0o644)
    (other_base / "generation_config.json").write_text('{"do_sample": false}')
    from llmft.manifest import write_manifest

    write_manifest(other_base, {"name": "tiny"})
    lineage = {"base_model": {**tiny_adapters["base"], "ref": str(other_base)}}
    registry.register("acme", "swapped", tiny_adapters["dirs"][1], actor="a", lineage=lineage)
    assert model_identity(other_base)["sha256"] != tiny_adapters["base"]["sha256"]
    with pytest.raises(IntegrityError, match="was trained on"):
        load_version(registry, "acme", "swapped:1")

    rec = _register(registry, tiny_adapters)
    target = Path(rec.uri) / "adapter_config.json"
    target.chmod(0o644)
    target.write_text(target.read_text().replace('"r": 4', '"r": 8'))
    with pytest.raises(IntegrityError, match="adapter_config.json"):
        load_version(registry, "acme", "support:1")
    with pytest.raises(IntegrityError, match="adapter_config.json"):
        export_adapter(registry, "acme", "support:1", tmp_path / "out")
    assert not (tmp_path / "out").exists()

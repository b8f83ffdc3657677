"""The tiny base model: built locally, loaded through from_pretrained, deterministic, identified by sha256."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmft.errors import ConflictError, IntegrityError, NotFoundError
from llmft.manifest import read_manifest
from llmft.models import build_tiny_base, ensure_base, load_base, load_tokenizer, model_identity, resolve_base

CONVERSATION = [
    {"role": "system", "content": "You are a helpful support assistant."},
    {"role": "user", "content": "How do I reset my password in Ledgerly?"},
    {"role": "assistant", "content": "Open the sign in page and select forgot password."},
]


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_import_is_cheap():
    heavy = "('torch', 'transformers', 'tokenizers')"
    code = f"import sys, llmft.models; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_loads_through_auto_classes(tiny_base_dir):
    import torch

    model, tokenizer, identity = load_base(tiny_base_dir)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.dtype == torch.float32 and not model.training
    cfg = model.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads) == (256, 4, 4, 2)
    assert cfg.vocab_size == 2048 and len(tokenizer) <= cfg.vocab_size
    assert 2_000_000 < sum(p.numel() for p in model.parameters()) < 10_000_000
    assert tokenizer.pad_token == "<|pad|>" and tokenizer.padding_side == "right"
    assert tokenizer.eos_token_id == cfg.eos_token_id == model.generation_config.eos_token_id
    assert identity == model_identity(tiny_base_dir)
    assert identity["name"] == "tiny" and len(identity["sha256"]) == 64
    assert load_tokenizer(tiny_base_dir, padding_side="left").padding_side == "left"
    assert all(oct(p.stat().st_mode & 0o777) == "0o644" for p in tiny_base_dir.iterdir())


def test_tokenizer_round_trips_text_including_non_ascii(tiny_base_dir):
    tokenizer = load_tokenizer(tiny_base_dir)
    texts = ["How do I export my data?", "Grüße aus Köln, naïve café — 東京 ☕ 😀\n\ttabs  and  spaces ", ""]
    for text in texts:
        ids = tokenizer(text)["input_ids"]
        assert tokenizer.decode(ids) == text
        assert tokenizer.bos_token_id not in ids and tokenizer.eos_token_id not in ids  # no specials added
    common = tokenizer("the password")["input_ids"]
    assert len(common) <= 3  # BPE learned words from the corpus, not bytes
    for special in ("<|bos|>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>"):
        assert len(tokenizer(special)["input_ids"]) == 1


def test_chat_template_generation_prompt_is_a_prefix(tiny_base_dir):
    tokenizer = load_tokenizer(tiny_base_dir)
    full = tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    prompt = tokenizer.apply_chat_template(CONVERSATION[:-1], tokenize=False, add_generation_prompt=True)
    assert full.startswith(prompt) and prompt.endswith("<|assistant|>\n")
    assert full[len(prompt):] == CONVERSATION[-1]["content"] + tokenizer.eos_token
    assert full.startswith(tokenizer.bos_token) and full.count(tokenizer.bos_token) == 1
    no_prompt = tokenizer.apply_chat_template(CONVERSATION[:-1], tokenize=False)
    assert not no_prompt.endswith("<|assistant|>\n")
    full_ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert full_ids[: len(prompt_ids)] == prompt_ids and full_ids[-1] == tokenizer.eos_token_id
    with pytest.raises(Exception, match="unknown chat role: tool"):
        tokenizer.apply_chat_template([{"role": "tool", "content": "x"}], tokenize=False)


def test_pretraining_lowered_loss_and_generation_produces_text(tiny_base_dir):
    import torch
    from transformers import AutoModelForCausalLM

    meta = read_manifest(tiny_base_dir).meta
    assert meta["final_loss"] < meta["initial_loss"] - 2.0, meta
    model, tokenizer, _ = load_base(tiny_base_dir, padding_side="left")
    text = "How to reset your password in Quillpad\n\n1. Open the sign in page.\n2. Select forgot password."
    ids = tokenizer(tokenizer.bos_token + text, return_tensors="pt")["input_ids"]
    torch.manual_seed(0)
    untrained = AutoModelForCausalLM.from_config(model.config)
    with torch.no_grad():
        trained_loss = model(input_ids=ids, labels=ids).loss.item()
        untrained_loss = untrained(input_ids=ids, labels=ids).loss.item()
    assert trained_loss < untrained_loss - 2.0, (trained_loss, untrained_loss)
    prompts = [tokenizer.apply_chat_template(CONVERSATION[1:2], tokenize=False, add_generation_prompt=True),
               tokenizer.bos_token + "How to clean a keyboard"]
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    out = model.generate(**batch, max_new_tokens=16, do_sample=False)
    for row in out[:, batch["input_ids"].shape[1]:]:
        assert tokenizer.decode(row, skip_special_tokens=True).strip()


def test_identity_changes_with_one_byte_and_verify_names_the_file(tiny_base_dir, tmp_path):
    copy = tmp_path / "tiny"
    shutil.copytree(tiny_base_dir, copy)
    before = model_identity(copy)
    assert before["sha256"] == read_manifest(copy).digest and before["files"] == 6
    assert load_base(copy, verify=True)[2]["sha256"] == before["sha256"]
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    assert model_identity(copy)["sha256"] != before["sha256"]
    with pytest.raises(IntegrityError, match="model.safetensors"):
        load_base(copy, verify=True)
    (copy / "manifest.json").unlink()
    with pytest.raises(IntegrityError, match="no manifest.json"):
        load_base(copy, verify=True)


def test_same_seed_is_bit_identical_and_seed_matters(tmp_path):
    small = partial(build_tiny_base, pretrain_steps=3, seq_len=64, batch_size=2)
    a, b, c = small(tmp_path / "a", seed=7), small(tmp_path / "b", seed=7), small(tmp_path / "c", seed=8)
    files_a = _files(tmp_path / "a")
    expected = {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja", "manifest.json"}
    assert set(files_a) >= expected
    assert files_a == _files(tmp_path / "b")
    assert a["identity"] == b["identity"] and a["final_loss"] == b["final_loss"]
    assert c["identity"]["sha256"] != a["identity"]["sha256"]
    with pytest.raises(ConflictError, match="not empty"):
        small(tmp_path / "a", seed=7)


def test_resolve_base_errors_name_the_ref(tmp_path):
    with pytest.raises(NotFoundError, match="'no-such-model'"):
        resolve_base("no-such-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotFoundError, match="has no config.json"):
        load_base(tmp_path / "empty")


def test_tiny_ref_is_built_on_first_use_and_reused(monkeypatch, llmft_home):
    import llmft.models.tiny as tiny

    monkeypatch.setattr(tiny, "build_tiny_base", partial(tiny.build_tiny_base, pretrain_steps=2))
    path = ensure_base("tiny")
    assert path == llmft_home.resolve() / "storage" / "models" / "tiny"
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    model, tokenizer, identity = load_base("tiny", verify=True)
    assert identity["name"] == "tiny" and identity["sha256"] == model_identity(path)["sha256"]
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp  # not rebuilt
    assert ensure_base("tiny") == resolve_base("tiny") == path
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp


def test_resolving_an_unbuilt_tiny_never_builds_it(monkeypatch, llmft_home):
    """A lookup (a curation worker's tokenizer, a replica's base) must not pretrain a model as a side effect."""
    import llmft.models.tiny as tiny

    def refuse(*args, **kwargs):
        raise AssertionError("resolving a base must not build it")

    monkeypatch.setattr(tiny, "build_tiny_base", refuse)
    for lookup in (resolve_base, load_tokenizer, load_base):
        with pytest.raises(NotFoundError, match="'tiny' is not built yet.*build-tiny"):
            lookup("tiny")
    assert not (llmft_home / "storage" / "models" / "tiny").exists()


def test_cli_build_tiny_and_identity(tmp_path):
    from llmft.cli.main import app

    runner = CliRunner()
    out = tmp_path / "m"
    res = runner.invoke(app, ["models", "build-tiny", "--out", str(out), "--steps", "2", "--seed", "3", "--json"])
    assert res.exit_code == 0, res.output
    built = json.loads(res.stdout)
    assert built["path"] == str(out.resolve()) and built["params"] > 0 and built["final_loss"] < built["initial_loss"]
    res = runner.invoke(app, ["models", "identity", str(out), "--json", "--verify"])
    assert res.exit_code == 0, res.output
    ident = json.loads(res.stdout)
    assert ident["sha256"] == built["identity"]["sha256"] == model_identity(out)["sha256"] and ident["verified"]
    res = runner.invoke(app, ["models", "identity", str(out)])
    assert res.exit_code == 0 and built["identity"]["sha256"] in res.output
    res = runner.invoke(app, ["models", "build-tiny", "--out", str(out), "--steps", "2"])
    assert res.exit_code == 1 and "not empty" in res.output
    res = runner.invoke(app, ["models", "identity", str(tmp_path / "missing")])
    assert res.exit_code == 1 and "not found" in res.output

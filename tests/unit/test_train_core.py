"""Training core without Ray: loss mask, packing isolation, seeded order, schedule, guards, retention, policy."""

from __future__ import annotations

import math

import pytest

from llmft.config.training import GuardSpec, TrainingSpec
from llmft.errors import PermissionDeniedError, SpecError
from llmft.train.data import (IGNORE, BatchSchedule, Example, collate_packed, collate_padded, pack, tokenize_example,
                              tokenize_rows)
from llmft.train.guards import DivergenceGuard
from llmft.train.loop import lr_factor
from llmft.train.checkpointing import retention
from llmft.train.policy import apply_policy


def _spec(**kw) -> TrainingSpec:
    return TrainingSpec.model_validate({"name": "t", "tenant": "acme", "base_model": "tiny", "dataset": "d", **kw})


def test_response_only_loss_mask(tiny_base_dir):
    from llmft.models.loading import load_tokenizer

    tok = load_tokenizer(tiny_base_dir)
    prompt = tok.apply_chat_template([{"role": "user", "content": "hi there"}], tokenize=False,
                                     add_generation_prompt=True)
    ex = tokenize_example(tok, prompt, "hello back" + tok.eos_token, 64)
    n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
    assert ex.labels[:n_prompt] == [IGNORE] * n_prompt
    assert ex.labels[n_prompt:] == ex.input_ids[n_prompt:] and ex.n_loss_tokens > 0
    assert ex.labels[-1] == tok.eos_token_id and ex.cut == 0
    assert tokenize_example(tok, prompt, "x", n_prompt, "drop") is None  # no room left for the answer


def test_too_long_rows_keep_their_answer_and_are_counted(tiny_base_dir):
    """Past max_seq_len the prompt is cut from the left (the answer stays whole) or the row dropped, per spec."""
    from llmft.models.loading import load_tokenizer

    tok = load_tokenizer(tiny_base_dir)
    prompt = tok.apply_chat_template([{"role": "user", "content": "word " * 40 + "the end"}], tokenize=False,
                                     add_generation_prompt=True)
    answer = '{"category": "billing"}' + tok.eos_token
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    a_ids = tok(answer, add_special_tokens=False)["input_ids"]
    limit = len(a_ids) + 10
    ex = tokenize_example(tok, prompt, answer, limit)
    assert len(ex.input_ids) == limit and ex.cut == len(p_ids) - 10
    assert ex.input_ids == p_ids[-10:] + a_ids  # the end of the prompt (the assistant header) and the whole answer
    assert ex.labels == [IGNORE] * 10 + a_ids
    assert tokenize_example(tok, prompt, answer, limit, "drop") is None
    assert tokenize_example(tok, prompt, answer, len(a_ids)) is None  # the answer alone fills the limit
    rows = [{"id": "a", "prompt": prompt, "completion": answer}, {"id": "b", "prompt": "hi", "completion": answer},
            {"id": "c", "prompt": "hi", "completion": "x " * 200}]
    split = tokenize_rows(tok, rows, limit)
    assert (split.rows, len(split.examples), split.cut, split.dropped) == (3, 2, 1, 1)
    dropped = tokenize_rows(tok, rows, limit, "drop")
    assert (len(dropped.examples), dropped.cut, dropped.dropped) == (1, 0, 2)
    with pytest.raises(ValueError, match="truncation"):
        tokenize_example(tok, prompt, answer, limit, "cut_answer")


def test_packing_keeps_examples_apart(tiny_base_dir):
    """Logits of packed examples equal those of the same examples run alone (block-diagonal attention)."""
    import torch

    from llmft.models.loading import load_base

    model, _, _ = load_base(tiny_base_dir)
    exs = [Example([5, 6, 7, 8, 9], [IGNORE, IGNORE, 7, 8, 9]), Example([10, 11, 12], [IGNORE, 11, 12]),
           Example([13, 14, 15, 16], [IGNORE, IGNORE, 15, 16])]
    packed = collate_packed([exs], pad_id=0, block=16)
    assert packed["n_useful"] == 12 and packed["position_ids"][0, :6].tolist() == [0, 1, 2, 3, 4, 0]
    with torch.no_grad():
        logits = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False).logits[0]
        at = 0
        for e in exs:
            alone = model(input_ids=torch.tensor([e.input_ids])).logits[0]
            assert torch.allclose(logits[at:at + len(e.input_ids)], alone, atol=1e-5)
            at += len(e.input_ids)
        # control: without position ids the second example would see the first one
        mixed = model(input_ids=packed["input_ids"], use_cache=False).logits[0]
        assert not torch.allclose(mixed[5:8], model(input_ids=torch.tensor([exs[1].input_ids])).logits[0], atol=1e-3)
    assert packed["labels"][0, 5] == IGNORE  # an example's first token is never a target


def test_batch_plan_is_seeded_and_resumable():
    exs = [Example(list(range(1, 2 + i % 7)), [IGNORE] + list(range(2, 2 + i % 7))) for i in range(40)]
    plan = BatchSchedule(exs, batch_size=2, world_size=2, seed=3, packing=False, block=16, pad_id=0)
    first = [b["input_ids"].tolist() for _, b in plan.batches(0, rank=1)]
    again = [b["input_ids"].tolist() for _, b in BatchSchedule(exs, 2, 2, 3, False, 16, 0).batches(0, rank=1)]
    other_seed = [b["input_ids"].tolist() for _, b in BatchSchedule(exs, 2, 2, 4, False, 16, 0).batches(0, rank=1)]
    assert first == again and first != other_seed
    assert [b["input_ids"].tolist() for _, b in plan.batches(0, rank=1, start=4)] == first[4:]
    assert plan.batches_per_epoch == 10
    packed = BatchSchedule(exs, 2, 2, 3, True, 16, 0)
    assert packed.batches_per_epoch < plan.batches_per_epoch
    assert sum(len(g) for g in pack(exs, 16)) == 40
    padded = collate_padded(exs[:3], pad_id=0)
    assert padded["attention_mask"].sum().item() == padded["n_useful"]


def test_warmup_then_cosine():
    assert lr_factor(0, 100, 10, "cosine") == pytest.approx(0.1)
    assert lr_factor(9, 100, 10, "cosine") == pytest.approx(1.0)
    assert lr_factor(55, 100, 10, "cosine") == pytest.approx(0.5)
    assert lr_factor(100, 100, 10, "cosine") == pytest.approx(0.0)
    assert lr_factor(50, 100, 0, "constant") == 1.0


def test_divergence_guard():
    g = DivergenceGuard(GuardSpec(loss_spike_factor=3, grad_norm_max=100, window=5))
    for step, loss in enumerate([2.0, 1.9, 1.8, 1.7]):
        assert g.check(step, loss, 1.0) is None
    assert "NaN" in g.check(5, math.nan, 1.0)
    assert "running median" in g.check(6, 9.0, 1.0)
    assert "grad_norm_max" in g.check(7, 1.6, 500.0)
    assert g.check(8, 1.6, 1.0) is None


def test_retention_keeps_last_k_and_best():
    entries = [(10, 3.0), (20, 1.0), (30, 2.0), (40, 2.5), (50, None)]
    assert retention(entries, keep_last=2) == {10, 30}
    assert retention(entries, keep_last=5) == set()


def test_policy_rules():
    restricted = apply_policy(_spec(), params=10_000_000, classification="restricted")
    assert restricted.spec.privacy.enabled and restricted.decisions[0].rule == "restricted-data-requires-dp"
    with pytest.raises(PermissionDeniedError, match="restricted-data-requires-dp"):
        apply_policy(_spec(privacy={"enabled": False}), 10_000_000, "restricted")
    with pytest.raises(PermissionDeniedError, match="restricted-data-epsilon-cap"):
        apply_policy(_spec(privacy={"target_epsilon": 50}), 10_000_000, "restricted")
    big = apply_policy(_spec(), params=8_000_000_000, classification="internal")
    assert big.spec.method.value == "qlora"
    assert apply_policy(_spec(method="lora"), 8_000_000_000, "internal").spec.method.value == "lora"  # override
    with pytest.raises(PermissionDeniedError, match="full-ft-needs-gpu"):
        apply_policy(_spec(method="full"), 8_000_000_000, "internal")
    assert apply_policy(_spec(), 10_000_000, "public").decisions == []


def test_bad_specs_are_refused(tiny_base_dir):
    from llmft.train.methods import check_target_modules, skeleton
    from llmft.train.strategies import check_supported

    with pytest.raises(Exception, match="greater than or equal to 1"):
        _spec(lora={"r": 0})
    with pytest.raises(SpecError, match="'qkv_proj' is not a module"):
        check_target_modules(skeleton(tiny_base_dir), ["q_proj", "qkv_proj"])
    with pytest.raises(SpecError, match="deepspeed with method=qlora"):
        check_supported(_spec(method="qlora", distributed={"strategy": "deepspeed"}), cuda_available=False)
    with pytest.raises(SpecError, match="fp16 autocast needs CUDA"):
        check_supported(_spec(precision="fp16"), cuda_available=False)
    with pytest.raises(SpecError, match="use_gpu=true but no CUDA"):
        check_supported(_spec(resources={"use_gpu": True}), cuda_available=False)

"""Test helper: a real, quick LoRA fine-tune on sample ticket rows (plain PyTorch), for the eval gate tests."""

from __future__ import annotations

import json
import random
from pathlib import Path


def ticket_pairs(path: Path) -> list[tuple[str, str]]:
    """(prompt, response) of every well-formed ticket row (malformed and empty rows skipped)."""
    pairs = []
    for line in open(path, "rb"):
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("prompt"), str) and isinstance(row.get("response"), str) \
                and row["response"].strip():
            pairs.append((row["prompt"], row["response"]))
    return pairs


def shuffled(pairs: list[tuple[str, str]], seed: int = 1) -> list[tuple[str, str]]:
    """Each prompt paired with another row's response."""
    responses = [a for _, a in pairs]
    random.Random(seed).shuffle(responses)
    return [(q, a) for (q, _), a in zip(pairs, responses)]


def fit_lora(base_dir: Path, pairs: list[tuple[str, str]], out: Path, *, steps: int, lr: float, batch: int = 8,
             max_len: int = 128, seed: int = 0) -> list[float]:
    """Train a LoRA adapter on chat-rendered pairs (loss on the response only); save adapter + tokenizer."""
    import torch
    from peft import LoraConfig, get_peft_model

    from llmft.models.loading import load_base

    torch.manual_seed(seed)
    model, tok, _ = load_base(base_dir)
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=[
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=lr)
    encoded = []
    for q, a in pairs:
        prompt = tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        a_ids = tok(a + tok.eos_token, add_special_tokens=False)["input_ids"]
        encoded.append(((p_ids + a_ids)[:max_len], ([-100] * len(p_ids) + a_ids)[:max_len]))
    rng, losses = random.Random(seed), []
    peft_model.train()
    for _ in range(steps):
        rows = rng.sample(encoded, batch)
        width = max(len(x) for x, _ in rows)
        ids = torch.tensor([x + [tok.pad_token_id] * (width - len(x)) for x, _ in rows])
        labels = torch.tensor([y + [-100] * (width - len(y)) for _, y in rows])
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x, _ in rows])
        loss = peft_model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    peft_model.save_pretrained(out)
    tok.save_pretrained(out)
    return losses

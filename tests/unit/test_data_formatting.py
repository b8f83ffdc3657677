"""Formatting contract: chat template prompts, eos-terminated completions, response-only loss, stable splits."""

import json

from llmft.data import formatting


def test_alpaca_and_split_are_deterministic():
    ex = formatting.format_example("Reset my password", "Open settings.", style="alpaca", tokenizer=None)
    assert ex["prompt"].endswith("### Response:\n") and "Reset my password" in ex["prompt"]
    assert ex["completion"] == "Open settings." and ex["messages"] == "[]"
    splits = [formatting.split_for(f"t-{i}", 0.8, 0.1) for i in range(2000)]
    assert splits == [formatting.split_for(f"t-{i}", 0.8, 0.1) for i in range(2000)]
    share = {s: splits.count(s) / len(splits) for s in formatting.SPLITS}
    assert 0.76 < share["train"] < 0.84 and 0.07 < share["validation"] < 0.13


def test_chat_rendering_and_loss_mask(tiny_base_dir):
    from llmft.models.loading import load_tokenizer

    tok = load_tokenizer(tiny_base_dir)
    ex = formatting.format_example("How do I export?", "Use the export button.", style="chat", tokenizer=tok,
                                   system_prompt="Be brief.")
    messages = json.loads(ex["messages"])
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    assert ex["prompt"] == tok.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    assert ex["completion"] == "Use the export button." + tok.eos_token
    assert ex["prompt"] + ex["completion"] == tok.apply_chat_template(messages, tokenize=False)
    enc = formatting.tokenize_example(tok, ex["prompt"], ex["completion"])
    n_prompt = len(tok(ex["prompt"], add_special_tokens=False)["input_ids"])
    assert enc.loss_mask[:n_prompt] == [0] * n_prompt and all(enc.loss_mask[n_prompt:])
    assert enc.labels[:n_prompt] == [-100] * n_prompt
    assert tok.decode(enc.input_ids[n_prompt:]).startswith("Use the export button")
    assert enc.loss_mask == formatting.loss_mask_for(enc.input_ids[:n_prompt], enc.input_ids[n_prompt:])

"""Training learns a conditional task, for LoRA and full fine-tuning alike, and the loss covers only the answers.

The task: a ticket naming one of four products -> a fixed JSON answer whose label depends on that word,
so the majority class scores ~0.3 and only a model that reads the prompt scores high. Held-out tickets
are generated with another seed. The LoRA spec trains the input embedding and the output head in full
(`lora.modules_to_save`): on the briefly pretrained tiny base a frozen output layer caps how likely
any answer token can be, and with a frozen input embedding LoRA learns the answer's template but
answers the label at its overall frequency, ignoring the ticket.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from llmft.config.training import TrainingSpec
from llmft.train.data import IGNORE, BatchSchedule, tokenize_rows
from llmft.train.runtime import LocalRuntime
from llmft.train.worker import Session

LABELS = {"printer": "hardware", "invoice": "billing", "password": "account", "parcel": "shipping"}
FILLER = "the my a please help today issue with our team since morning it is not working again can you check".split()


def task_rows(tokenizer, n: int, seed: int, split: str) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        word = rng.choice(sorted(LABELS))
        words = [rng.choice(FILLER) for _ in range(rng.randint(4, 12))]
        words.insert(rng.randint(0, len(words)), word)
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Triage: " + " ".join(words)}],
                                               tokenize=False, add_generation_prompt=True)
        answer = json.dumps({"category": LABELS[word]})
        rows.append({"id": f"{split}-{i:04d}", "split": split, "prompt": prompt,
                     "completion": answer + tokenizer.eos_token, "label": LABELS[word]})
    return rows


@pytest.fixture(scope="module")
def task(tiny_base_dir, tmp_path_factory):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from llmft.models.loading import load_tokenizer

    tok = load_tokenizer(tiny_base_dir)
    train, val = task_rows(tok, 320, 0, "train"), task_rows(tok, 16, 1, "validation")
    snap = tmp_path_factory.mktemp("task") / "snap"
    snap.mkdir()
    pq.write_table(pa.Table.from_pylist([{k: r[k] for k in ("id", "split", "prompt", "completion")}
                                         for r in train + val]), snap / "part-0.parquet")
    return {"snap": snap, "tok": tok, "train": train, "held_out": task_rows(tok, 48, 2, "test")}


def train(base, snap, run_dir, method, **kw) -> dict:
    data = {"name": "learn", "tenant": "acme", "base_model": str(base), "dataset": "d", "method": method,
            "optim": {"max_steps": 150, "batch_size": 8, "warmup_ratio": 0.03, "schedule": "constant",
                      **kw.pop("optim")},
            "data": {"max_seq_len": 128, "packing": True, "validation_every": 1000},
            "checkpoint": {"every_n_steps": 1000}, "resources": {"num_workers": 1, "torch_threads": 2}, **kw}
    spec = TrainingSpec.model_validate(data)
    out = Session({"spec": spec.model_dump(mode="json"), "run_uri": str(run_dir), "debug": {"log_every": 20}},
                  LocalRuntime(snap, run_dir)).run()
    assert out["status"] == "succeeded"
    return out


def held_out_accuracy(base, checkpoint: Path, method: str, tok, rows: list[dict]) -> tuple[float, list[str]]:
    """Greedy answers to held-out tickets, parsed as JSON, compared with the true label."""
    import torch
    from transformers import AutoModelForCausalLM

    from llmft.models.loading import load_base

    if method == "full":
        model = AutoModelForCausalLM.from_pretrained(checkpoint / "model")
    else:
        from peft import PeftModel

        model = PeftModel.from_pretrained(load_base(base)[0], checkpoint / "adapter")
    model.eval()
    tok.padding_side = "left"
    answers = []
    for i in range(0, len(rows), 16):
        chunk = rows[i:i + 16]
        enc = tok([r["prompt"] for r in chunk], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=24, do_sample=False, pad_token_id=tok.pad_token_id,
                                 eos_token_id=tok.eos_token_id)
        answers += tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    tok.padding_side = "right"
    right = 0
    for row, answer in zip(rows, answers):
        try:
            right += json.loads(answer).get("category") == row["label"]
        except (ValueError, AttributeError):
            pass
    return right / len(rows), answers


def majority_share(rows: list[dict]) -> float:
    labels = [r["label"] for r in rows]
    return max(labels.count(x) for x in set(labels)) / len(labels)


def test_loss_covers_only_the_answers_with_and_without_packing(task):
    """Every prompt token has label -100; the labelled tokens spell exactly the examples' answers."""
    tok = task["tok"]
    split = tokenize_rows(tok, task["train"][:64], 128)
    assert split.cut == split.dropped == 0
    answer = "|".join(re.escape(json.dumps({"category": v}) + tok.eos_token) for v in LABELS.values())
    for packing in (False, True):
        plan = BatchSchedule(split.examples, 8, 1, 0, packing, 128, tok.pad_token_id)
        for _, batch in plan.batches(0, 0):
            for ids, labels in zip(batch["input_ids"], batch["labels"]):
                kept = labels != IGNORE
                assert (labels[kept] == ids[kept]).all()
                target = tok.decode(ids[kept])
                n_examples = int((ids == tok.bos_token_id).sum())
                assert re.fullmatch(f"(?:{answer}){{{n_examples}}}", target), target
                assert "Triage" not in target and "<|user|>" not in target


def test_peft_forward_keeps_labels_and_position_ids(tiny_base_dir, task):
    """The LoRA-wrapped model gets the labels (its loss is the response-only loss) and the packed position ids."""
    import torch

    from llmft.train.methods import load_trainable

    spec = TrainingSpec.model_validate({"name": "t", "tenant": "acme", "base_model": str(tiny_base_dir),
                                        "dataset": "d", "method": "lora"})
    model, tok, _ = load_trainable(spec)
    model.eval()  # no LoRA dropout: at init (B = 0) the adapter changes nothing
    split = tokenize_rows(tok, task["train"][:32], 128)
    _, batch = next(BatchSchedule(split.examples, 4, 1, 0, True, 128, tok.pad_token_id).batches(0, 0))
    with torch.no_grad():
        out = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], labels=batch["labels"],
                    use_cache=False)
        with model.disable_adapter():
            base = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
            unpacked = model(input_ids=batch["input_ids"], use_cache=False).logits
    logits, labels = out.logits[:, :-1], batch["labels"][:, 1:]
    manual = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                               ignore_index=IGNORE)
    assert torch.allclose(out.loss, manual, atol=1e-5)
    assert torch.allclose(out.logits, base, atol=1e-5)  # position ids reached the base model
    assert not torch.allclose(out.logits, unpacked, atol=1e-3)  # (they matter: without them examples mix)


@pytest.mark.slow
@pytest.mark.parametrize("method,extra", [
    ("lora", {"optim": {"learning_rate": 3e-3, "max_grad_norm": 100.0},  # the triage recipe's optimiser
              "lora": {"r": 8, "alpha": 16, "dropout": 0.0,
                       "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                       "modules_to_save": ["embed_tokens", "lm_head"]}}),
    ("full", {"optim": {"learning_rate": 1e-3}}),
])
def test_fine_tuning_learns_a_conditional_task(tiny_base_dir, task, tmp_path, method, extra):
    out = train(tiny_base_dir, task["snap"], tmp_path / method, method, **extra)
    acc, answers = held_out_accuracy(tiny_base_dir, Path(out["checkpoint"]["uri"]), method, task["tok"],
                                     task["held_out"])
    majority = majority_share(task["held_out"])
    print(f"\n{method}: val loss {out['val_loss']:.3f}, held-out accuracy {acc:.2f} (majority {majority:.2f}), "
          f"{out['seconds']:.0f}s; e.g. {answers[:2]}")
    assert out["val_loss"] < 0.5
    assert acc >= majority + 0.5, answers[:8]

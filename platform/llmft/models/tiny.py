"""The tiny base model: a locally trained tokenizer and a few-M-parameter Llama, briefly pretrained.

It lets every stage (curate, train, evaluate, serve) run offline on a CPU box through the
same `from_pretrained` path a real base model takes. The build is deterministic: the same
seed gives bit-identical files, so the model's identity (sha256 manifest) is reproducible.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

from llmft.errors import ConflictError, LlmftError
from llmft.models.identity import model_identity
from llmft.models.loading import BUILTIN, builtin_dir, is_built, resolve_base

CORPUS_DIR = Path(__file__).parent / "corpus"
TINY_NAME = "tiny"

PAD, BOS, EOS = "<|pad|>", "<|bos|>", "<|end|>"
ROLES = ("system", "user", "assistant")
ROLE_TOKENS = tuple(f"<|{role}|>" for role in ROLES)
SPECIAL_TOKENS = (PAD, BOS, EOS, *ROLE_TOKENS)

# Every turn is `<|role|>\n{content}<|end|>`; `<|end|>` is also the eos token, so a model
# trained on the rendering learns to stop, and the generation prompt (`<|assistant|>\n`)
# is a strict prefix of the full conversation: formatters split prompt/response on it.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('unknown chat role: ' + message['role']) }}"
    "{% endif %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)

SYSTEM_PROMPTS = (
    "You are a helpful customer support assistant.",
    "You answer questions about our products clearly and briefly.",
    "You are a friendly IT help desk agent.",
)

DOC_SEPARATOR = "\n\n\n"


def read_corpus(corpus_dir: Path | None = None) -> tuple[list[str], list[tuple[str, str]]]:
    """Plain documents and (question, answer) pairs from the shipped corpus files.

    Documents are separated by two blank lines; a document that is exactly
    `Q: ...` / `A: ...` is a Q&A pair (rendered through the chat template for pretraining).
    """
    corpus_dir = Path(corpus_dir or CORPUS_DIR)
    files = sorted(corpus_dir.glob("*.txt"))
    if not files:
        raise LlmftError(f"{corpus_dir}: no corpus *.txt files (the package data is missing)")
    docs: list[str] = []
    pairs: list[tuple[str, str]] = []
    for path in files:
        for chunk in path.read_text(encoding="utf-8").split(DOC_SEPARATOR):
            chunk = chunk.strip()
            if not chunk:
                continue
            lines = chunk.split("\n")
            if len(lines) == 2 and lines[0].startswith("Q: ") and lines[1].startswith("A: "):
                pairs.append((lines[0][3:], lines[1][3:]))
            else:
                docs.append(chunk)
    return docs, pairs


def train_tokenizer(texts: list[str], vocab_size: int = 2048) -> Any:
    """Byte-level BPE trained with `tokenizers`, wrapped as a `PreTrainedTokenizerFast` with a chat template.

    `tokenizer(text)` adds no special tokens (like Qwen's); the chat template carries bos,
    so rendered conversations never get a doubled bos.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 256 + len(SPECIAL_TOKENS) + 1:
        raise LlmftError(f"vocab_size={vocab_size}: must exceed 256 byte symbols + {len(SPECIAL_TOKENS)} specials")
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        extra_special_tokens=list(ROLE_TOKENS),
        model_max_length=512,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def tiny_config(tokenizer: Any, *, vocab_size: int = 2048, hidden_size: int = 256, num_layers: int = 4,
                num_heads: int = 4, num_kv_heads: int = 2, intermediate_size: int = 688,
                max_positions: int = 512) -> Any:
    """A small Llama config (grouped-query attention, RoPE, SwiGLU).

    The embedding has `vocab_size` rows even when BPE learned fewer tokens (a small corpus
    runs out of merges): real models pad their vocab the same way, so downstream code
    must not assume `len(tokenizer) == config.vocab_size`.
    """
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=max(vocab_size, len(tokenizer)),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_positions,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


@contextlib.contextmanager
def deterministic_torch(seed: int) -> Iterator[None]:
    """One thread, deterministic kernels, seeded RNGs; the caller's settings come back afterwards."""
    import torch

    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(det)


@contextlib.contextmanager
def _quiet_progress() -> Iterator[None]:
    """No transformers progress bars on stderr while saving (keeps `--json` output clean)."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def token_stream(tokenizer: Any, docs: list[str], pairs: list[tuple[str, str]], seed: int) -> list[int]:
    """Shuffle plain documents (bos + text + eos) and chat-rendered Q&A pairs into one id stream."""
    rng = random.Random(seed)
    texts = [BOS + doc + EOS for doc in docs]
    for question, answer in pairs:
        messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        if rng.random() < 0.5:
            messages.insert(0, {"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
        texts.append(tokenizer.apply_chat_template(messages, tokenize=False))
    rng.shuffle(texts)
    ids: list[int] = []
    for encoded in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        ids.extend(encoded)
    return ids


def pretrain(model: Any, ids: list[int], *, steps: int, seq_len: int, batch_size: int, lr: float,
             seed: int, eval_blocks: int = 16) -> dict[str, float]:
    """Causal-LM pretraining on packed blocks; loss is measured on held-out blocks before and after."""
    import torch

    n_blocks = len(ids) // seq_len
    if n_blocks < eval_blocks + batch_size:
        raise LlmftError(f"corpus too small: {n_blocks} blocks of {seq_len} tokens")
    blocks = torch.tensor(ids[: n_blocks * seq_len], dtype=torch.long).view(n_blocks, seq_len)
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(n_blocks, generator=gen)
    held_out, train = blocks[order[:eval_blocks]], blocks[order[eval_blocks:]]

    def eval_loss() -> float:
        model.eval()
        with torch.no_grad():
            loss = model(input_ids=held_out, labels=held_out).loss.item()
        model.train()
        return loss

    initial = eval_loss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.01)
    warmup = max(1, steps // 10)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    model.train()
    train_loss = float("nan")
    for _ in range(steps):
        batch = train[torch.randint(len(train), (batch_size,), generator=gen)]
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        train_loss = loss.item()
    model.eval()
    return {"initial_loss": initial, "final_loss": eval_loss(), "last_train_loss": train_loss,
            "train_tokens": steps * batch_size * seq_len, "corpus_tokens": len(ids)}


def build_tiny_base(out_dir: Path | str, *, seed: int = 0, vocab_size: int = 2048, pretrain_steps: int = 160,
                    seq_len: int = 128, batch_size: int = 2, lr: float = 2e-3, hidden_size: int = 256,
                    num_layers: int = 4, num_heads: int = 4, num_kv_heads: int = 2, intermediate_size: int = 688,
                    max_positions: int = 512, corpus_dir: Path | None = None, overwrite: bool = False) -> dict:
    """Train tokenizer + model and save them (safetensors) with a manifest; same seed, same bytes.

    The files are written to a temporary sibling directory and renamed into place, so a
    reader never sees a half-built model. Returns path, identity, params, losses, seconds.
    """
    from llmft.manifest import write_manifest

    started = time.perf_counter()
    out_dir = Path(out_dir).resolve()
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise ConflictError(f"{out_dir}: already exists and is not empty (pass overwrite=True / --force)")
    docs, pairs = read_corpus(corpus_dir)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        import torch
        from transformers import LlamaForCausalLM

        with deterministic_torch(seed):
            tokenizer = train_tokenizer(docs + [text for pair in pairs for text in pair], vocab_size)
            config = tiny_config(tokenizer, vocab_size=vocab_size, hidden_size=hidden_size, num_layers=num_layers,
                                 num_heads=num_heads, num_kv_heads=num_kv_heads, intermediate_size=intermediate_size,
                                 max_positions=max_positions)
            model = LlamaForCausalLM(config).to(torch.float32)
            losses = pretrain(model, token_stream(tokenizer, docs, pairs, seed), steps=pretrain_steps,
                              seq_len=min(seq_len, max_positions), batch_size=batch_size, lr=lr, seed=seed)
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.bos_token_id = tokenizer.bos_token_id
        with _quiet_progress():
            model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        for path in tmp.rglob("*"):  # safetensors writes 0600; other processes (Ray workers) must read it
            if path.is_file():
                path.chmod(0o644)
        params = sum(p.numel() for p in model.parameters())
        hparams = {"vocab_size": config.vocab_size, "hidden_size": hidden_size, "num_layers": num_layers,
                   "num_heads": num_heads, "num_kv_heads": num_kv_heads, "intermediate_size": intermediate_size,
                   "max_positions": max_positions, "pretrain_steps": pretrain_steps, "seq_len": seq_len,
                   "batch_size": batch_size, "lr": lr}
        meta = {"name": TINY_NAME, "kind": "base-model", "builder": "llmft.models.tiny", "seed": seed,
                "hparams": hparams, "tokenizer_size": len(tokenizer), "params": params,
                "initial_loss": round(losses["initial_loss"], 6), "final_loss": round(losses["final_loss"], 6)}
        write_manifest(tmp, meta=meta)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    identity = model_identity(out_dir, name=TINY_NAME)
    size = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
    return {"path": str(out_dir), "identity": identity, "params": params, "seed": seed,
            "initial_loss": losses["initial_loss"], "final_loss": losses["final_loss"],
            "last_train_loss": losses["last_train_loss"], "train_tokens": losses["train_tokens"],
            "corpus_tokens": losses["corpus_tokens"], "bytes_on_disk": size,
            "seconds": round(time.perf_counter() - started, 2)}


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    import fcntl

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_base(ref: str | Path) -> Path:
    """`resolve_base`, first building a built-in base (default seed) if it is not built yet.

    The one place a base gets built on demand; call it where building is the intent (the
    demo, a training job's preflight in the driver), never on a worker's lookup path. A file
    lock keeps two processes from building it at once.
    """
    if isinstance(ref, str) and ref in BUILTIN:
        target = builtin_dir(ref)
        if not is_built(target):
            with _exclusive(target.parent / f".{ref}.lock"):
                if not is_built(target):
                    build_tiny_base(target, overwrite=True)
    return resolve_base(ref)


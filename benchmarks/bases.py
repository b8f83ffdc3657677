"""Base models the benchmarks run on: the tiny base, and a ~110M Llama of the same family.

The 110M model is random-init (nothing can be downloaded here): its outputs are noise, but its
matmuls are the size of a small real model's, so overheads that vanish on a 4M model show.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def medium_base(tiny_dir: Path, out: Path) -> Path:
    """A ~110M-parameter Llama with the tiny tokenizer, random init (throughput only)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    if (out / "config.json").is_file():
        return out
    cfg = AutoConfig.from_pretrained(tiny_dir)
    cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers = 768, 2048, 12
    cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim = 12, 4, 64
    AutoModelForCausalLM.from_config(cfg).save_pretrained(out)
    for f in Path(tiny_dir).iterdir():
        if f.name.startswith(("tokenizer", "special", "chat")):
            shutil.copy2(f, out / f.name)
    return out

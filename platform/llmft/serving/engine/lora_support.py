"""Which LoRA adapters vLLM can run: the deploy-time check, read from `adapter_config.json` alone.

vLLM's LoRA kernels (punica) apply plain low-rank deltas to the decoder's linear layers, up
to the engine's `max_lora_rank`. DoRA, extra trained modules (`modules_to_save`), ranks above
the limit and target modules outside the linear layers are refused here with a one-line
reason, before any replica (or vLLM) sees the adapter. No vLLM import: the control plane runs it.
"""

from __future__ import annotations

import json
from pathlib import Path

from llmft.config.deployment import VLLM_LORA_RANKS
from llmft.errors import SpecError

# vLLM's LoRA-capable linear layers of the decoder families the platform serves (Llama, Mistral,
# Qwen2): the projections vLLM packs into qkv_proj / gate_up_proj plus o_proj / down_proj.
VLLM_LORA_MODULES = frozenset({"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"})


def check_max_lora_rank(rank: int) -> int:
    """A `max_lora_rank` vLLM accepts (it only takes a fixed set of sizes)."""
    if rank not in VLLM_LORA_RANKS:
        raise SpecError(f"max_lora_rank={rank}: vLLM accepts {', '.join(map(str, VLLM_LORA_RANKS))}")
    return rank


def vllm_refusal(adapter_dir: str | Path, max_lora_rank: int) -> str | None:
    """Why vLLM cannot serve this adapter (one line), or None when it can."""
    path = Path(adapter_dir) / "adapter_config.json"
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError):
        return "no readable adapter_config.json"
    if str(cfg.get("peft_type", "LORA")).upper() != "LORA":
        return f"peft_type {cfg.get('peft_type')} is not LoRA"
    if cfg.get("use_dora"):
        return "DoRA adapters are not supported by vLLM"
    if cfg.get("modules_to_save"):
        return f"modules_to_save ({', '.join(cfg['modules_to_save'])}) are not supported by vLLM"
    ranks = [int(cfg.get("r") or 0), *map(int, (cfg.get("rank_pattern") or {}).values())]
    if max(ranks) > max_lora_rank:
        return f"rank {max(ranks)} exceeds max_lora_rank {max_lora_rank}"
    targets = cfg.get("target_modules") or []
    if isinstance(targets, str):
        return f"target_modules given as a pattern ({targets!r}); vLLM needs module names"
    lacking = sorted(set(targets) - VLLM_LORA_MODULES)
    if lacking:
        return f"target modules {', '.join(lacking)} have no vLLM LoRA kernel"
    return None

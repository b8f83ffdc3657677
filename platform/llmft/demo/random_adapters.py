"""Small random LoRA adapters on a base model, for tests, benchmarks and demos of multi-LoRA serving.

Real PEFT adapters (saved with `save_pretrained`), with non-zero B matrices so each one
changes the model's outputs, published into an adapter source as immutable versions.
"""

from __future__ import annotations

from pathlib import Path


def make_adapter(base_ref: str | Path, out_dir: str | Path, seed: int, *, r: int = 4, scale: float = 1.0,
                 target_modules: tuple[str, ...] = ("q_proj", "v_proj", "o_proj")) -> Path:
    """Save one LoRA adapter whose B weights are seeded noise (so outputs differ from the base)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from llmft.models.loading import load_base

    model, _, _ = load_base(base_ref)
    peft_model = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, target_modules=list(target_modules)))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * scale)
    out = Path(out_dir)
    peft_model.save_pretrained(out)
    for path in out.rglob("*"):
        if path.is_file():
            path.chmod(0o644)  # safetensors writes 0600; replicas in other processes must read it
    return out


def publish_adapters(source, base_ref: str | Path, scratch: str | Path, specs: list[tuple[str, str, str]],
                     *, aliases: dict[tuple[str, str, str], tuple[str, ...]] | None = None) -> dict:
    """Create and publish `(tenant, name, version)` adapters; returns {adapter_id: ResolvedAdapter}."""
    out = {}
    for i, (tenant, name, version) in enumerate(specs):
        src = make_adapter(base_ref, Path(scratch) / f"{tenant}-{name}-{version}", seed=1000 + i)
        adapter = source.publish(tenant, name, version, src, aliases=(aliases or {}).get((tenant, name, version), ()),
                                 base_model=str(base_ref))
        out[adapter.adapter_id] = adapter
    return out

"""Turn a base model into the trainable model a TrainingSpec asks for (LoRA, QLoRA, full, prompt tuning)."""

from __future__ import annotations

from typing import Any

from llmft.config.training import Method, TrainingSpec
from llmft.errors import LlmftError, SpecError


def module_suffixes(model: Any) -> set[str]:
    """Last name component of every sub-module (what PEFT's target_modules match)."""
    return {name.rsplit(".", 1)[-1] for name, _ in model.named_modules() if name}


def check_target_modules(model: Any, targets: list[str], field: str = "lora.target_modules") -> None:
    """Refuse a LoRA target the model lacks, naming it (PEFT would only say 'not found' later)."""
    have = module_suffixes(model)
    missing = [t for t in targets if t not in have]
    if missing:
        named = sorted(n for n in have if n.endswith("_proj") or n in ("embed_tokens", "lm_head"))
        raise SpecError(f"{field}: {missing[0]!r} is not a module of the base model (it has: {', '.join(named)})")


def check_lora_modules(model: Any, lora: Any) -> None:
    check_target_modules(model, lora.target_modules)
    check_target_modules(model, lora.modules_to_save, field="lora.modules_to_save")


def skeleton(base_dir: Any) -> Any:
    """The model's module tree on the meta device: lets the driver validate a spec at any model size for free."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(base_dir)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def count_params(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def bnb_config(spec: TrainingSpec) -> Any:
    """BitsAndBytesConfig for QLoRA from the spec."""
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise LlmftError("method=qlora needs bitsandbytes: pip install 'llmft[train]'") from exc
    import torch

    q = spec.quantization
    dtype = getattr(torch, q.compute_dtype)
    if q.bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=q.quant_type,
                              bnb_4bit_use_double_quant=q.double_quant, bnb_4bit_compute_dtype=dtype)


def keep_cpu_4bit_layout(model: Any) -> None:
    """Turn off bitsandbytes' repacking of 4-bit weights for AVX512-BF16 CPU inference.

    On such CPUs a Linear4bit repacks its weight the first time it runs in eval mode without
    gradients (validation), which requires every output size to be a multiple of 32 (the tiny
    base's MLP is 688 wide, real models may not comply either) and leaves a layout training then
    cannot use; the plain 4-bit path is what training and validation both need.
    """
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def load_trainable(spec: TrainingSpec, device: Any = None) -> tuple[Any, Any, dict]:
    """(model ready to train, tokenizer, base identity) for the spec's method."""
    from llmft.models.loading import load_base, load_tokenizer, resolve_base

    if spec.method == Method.qlora:
        from transformers import AutoModelForCausalLM

        from llmft.models.loading import model_identity

        path = resolve_base(spec.base_model)
        tokenizer = load_tokenizer(path, padding_side="right")
        kwargs: dict = {"quantization_config": bnb_config(spec)}
        if device is not None and getattr(device, "type", "cpu") == "cuda":
            kwargs["device_map"] = {"": device}
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        keep_cpu_4bit_layout(model)
        identity = model_identity(path, name=str(spec.base_model))
    else:
        model, tokenizer, identity = load_base(spec.base_model, dtype="float32", padding_side="right", device=device)
    model.train()
    return apply_method(model, spec), tokenizer, identity


def apply_method(model: Any, spec: TrainingSpec) -> Any:
    """Wrap `model` with PEFT (or leave it whole for full fine-tuning)."""
    from peft import LoraConfig, PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model

    if model.config.pad_token_id is None:
        model.config.pad_token_id = model.config.eos_token_id
    if spec.method == Method.full:
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    if spec.method in (Method.lora, Method.qlora):
        check_lora_modules(model, spec.lora)
        if spec.method == Method.qlora:
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        cfg = LoraConfig(r=spec.lora.r, lora_alpha=spec.lora.alpha, lora_dropout=spec.lora.dropout,
                         target_modules=list(spec.lora.target_modules), task_type=TaskType.CAUSAL_LM, bias="none",
                         modules_to_save=list(spec.lora.modules_to_save) or None)
        return get_peft_model(model, cfg)
    if spec.method == Method.prompt_tuning:
        pt = spec.prompt_tuning
        kwargs: dict = {}
        if pt.init_text:
            kwargs = {"prompt_tuning_init": PromptTuningInit.TEXT, "prompt_tuning_init_text": pt.init_text,
                      "tokenizer_name_or_path": model.config._name_or_path}
        cfg = PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=pt.num_virtual_tokens, **kwargs)
        return get_peft_model(model, cfg)
    raise SpecError(f"method: {spec.method} is not supported")  # pragma: no cover


def trainable_state(model: Any) -> dict:
    """The tensors a checkpoint must hold: adapter weights (PEFT) or the full state dict."""
    from peft import PeftModel, get_peft_model_state_dict

    if isinstance(model, PeftModel):
        return get_peft_model_state_dict(model)
    return model.state_dict()


def load_trainable_state(model: Any, state: dict) -> None:
    from peft import PeftModel, set_peft_model_state_dict

    if isinstance(model, PeftModel):
        set_peft_model_state_dict(model, state)
    else:
        model.load_state_dict(state)

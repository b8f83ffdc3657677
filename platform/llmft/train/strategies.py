"""Data-parallel engines behind one interface: DDP, DeepSpeed ZeRO-2/3 and FSDP2 (by hand, so it runs on CPU).

The loop only calls `forward`, `backward`, `step`; checkpoints go through
`full_trainable_state` and `optimizer_state`, both called on every rank (collectives under
FSDP / ZeRO-3) and saved by rank 0. DDP's optimizer state is replicated; FSDP's is gathered
to full tensors and re-sharded on load (any world size). DeepSpeed's ZeRO partitions are not
checkpointed: a resumed DeepSpeed run restarts Adam moments (see README).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from llmft.config.training import Method, Precision, Strategy, TrainingSpec
from llmft.errors import SpecError
from llmft.train.loop import make_optimizer, make_scheduler


def refusals(spec: TrainingSpec, cuda_available: bool) -> list[str]:
    """Combinations that cannot work, each as one line naming the keys (checked before any worker starts)."""
    out = []
    s = spec.distributed.strategy
    gpu = spec.resources.use_gpu
    if gpu and not cuda_available:
        out.append("resources.use_gpu=true but no CUDA device is visible to this cluster's driver")
    if spec.precision == Precision.fp16 and not gpu:
        out.append("precision=fp16: fp16 autocast needs CUDA workers (resources.use_gpu=true); use fp32 on CPU")
    if s == Strategy.deepspeed:
        if spec.method == Method.qlora:
            out.append("distributed.strategy=deepspeed with method=qlora: ZeRO cannot shard bitsandbytes 4-bit weights")
        if spec.method == Method.prompt_tuning:
            out.append("distributed.strategy=deepspeed with method=prompt_tuning: not supported (use ddp)")
        if spec.privacy.enabled:
            out.append("distributed.strategy=deepspeed with privacy.enabled: Opacus needs per-sample gradients (use ddp)")
        if not gpu and spec.distributed.offload_optimizer:
            out.append("distributed.offload_optimizer=true on CPU workers: nothing to offload from (set use_gpu)")
        if not gpu and spec.precision != Precision.fp32:
            out.append(f"distributed.strategy=deepspeed with precision={spec.precision.value} on CPU: "
                       "the installed DeepSpeed CPU accelerator runs fp32 only here")
    if s == Strategy.fsdp:
        if spec.method in (Method.qlora, Method.prompt_tuning):
            out.append(f"distributed.strategy=fsdp with method={spec.method.value}: not supported (use ddp)")
        if spec.privacy.enabled:
            out.append("distributed.strategy=fsdp with privacy.enabled: Opacus needs DPDDP (use ddp)")
    if spec.privacy.enabled and spec.method != Method.lora:
        out.append(f"privacy.enabled with method={spec.method.value}: DP-SGD is supported for lora only (Opacus has"
                   " no per-sample gradient rule for the base model's RMSNorm, so full fine-tuning cannot be private)")
    if spec.privacy.enabled and spec.data.packing:
        out.append("privacy.enabled with data.packing: DP protects examples, and a packed block mixes several;"
                   " set data.packing=false")
    if spec.privacy.enabled and spec.optim.grad_accum != 1:
        out.append("privacy.enabled with optim.grad_accum > 1: Poisson batches are drawn per optimizer step")
    if spec.data.packing and spec.method == Method.prompt_tuning:
        out.append("data.packing with method=prompt_tuning: the shared soft prompt would join packed examples")
    return out


def check_supported(spec: TrainingSpec, cuda_available: bool) -> None:
    problems = refusals(spec, cuda_available)
    if problems:
        raise SpecError(problems[0])


def _trainable(model: Any) -> list:
    return [p for p in model.parameters() if p.requires_grad]


class DDPEngine:
    """torch DDP over the process group Ray Train opened (gloo on CPU, NCCL on GPU)."""

    def __init__(self, model: Any, spec: TrainingSpec, total_steps: int, world_size: int, device: Any) -> None:
        import torch

        self.inner = model
        self.world_size = world_size
        self.accum = spec.optim.grad_accum
        self.max_norm = spec.optim.max_grad_norm
        if world_size > 1:
            ids = [device.index] if device.type == "cuda" else None
            self.model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        else:
            self.model = model
        self.optimizer = make_optimizer(_trainable(model), spec.optim)
        self.scheduler = make_scheduler(self.optimizer, spec.optim, total_steps)

    def sync_context(self, last_micro: bool) -> Any:
        if self.world_size > 1 and not last_micro:
            return self.model.no_sync()
        return nullcontext()

    def backward(self, loss: Any) -> None:
        (loss / self.accum).backward()

    def step(self) -> float:
        import torch

        norm = torch.nn.utils.clip_grad_norm_(_trainable(self.inner), self.max_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def scale_lr(self, factor: float) -> None:
        self.scheduler.base_lrs = [b * factor for b in self.scheduler.base_lrs]
        for group in self.optimizer.param_groups:
            group["lr"] = group["lr"] * factor

    def full_trainable_state(self) -> dict:
        from llmft.train.methods import trainable_state

        return {k: v.detach().cpu().clone() for k, v in trainable_state(self.inner).items()}

    def load_trainable(self, state: dict) -> None:
        from llmft.train.methods import load_trainable_state

        load_trainable_state(self.inner, state)

    def optimizer_state(self) -> dict | None:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_optimizer_state(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])


def deepspeed_config(spec: TrainingSpec, world_size: int) -> dict:
    """DeepSpeed JSON config generated from the spec (the loop keeps micro-batch = optim.batch_size)."""
    zero: dict = {"stage": spec.distributed.zero_stage, "overlap_comm": False, "contiguous_gradients": True}
    if spec.distributed.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    if spec.distributed.zero_stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    cfg: dict = {
        "train_micro_batch_size_per_gpu": spec.optim.batch_size,
        "gradient_accumulation_steps": spec.optim.grad_accum,
        "train_batch_size": spec.optim.batch_size * spec.optim.grad_accum * world_size,
        "gradient_clipping": spec.optim.max_grad_norm,
        "zero_optimization": zero,
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    if spec.precision == Precision.bf16:
        cfg["bf16"] = {"enabled": True}
    elif spec.precision == Precision.fp16:
        cfg["fp16"] = {"enabled": True}
    return cfg


class DeepSpeedEngine(DDPEngine):
    """`deepspeed.initialize` inside the worker, reusing Ray's process group (no prepare_model)."""

    def __init__(self, model: Any, spec: TrainingSpec, total_steps: int, world_size: int, device: Any) -> None:
        try:
            import deepspeed
        except ImportError as exc:  # pragma: no cover
            raise SpecError("distributed.strategy=deepspeed needs deepspeed: pip install 'llmft[train]'") from exc
        self.inner = model
        self.world_size = world_size
        self.accum = spec.optim.grad_accum
        self.stage = spec.distributed.zero_stage
        optimizer = make_optimizer(_trainable(model), spec.optim)
        scheduler = make_scheduler(optimizer, spec.optim, total_steps)
        self.model, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=model, optimizer=optimizer, lr_scheduler=scheduler,
            config=deepspeed_config(spec, world_size), dist_init_required=False)

    def sync_context(self, last_micro: bool) -> Any:
        return nullcontext()  # DeepSpeed handles accumulation boundaries itself

    def backward(self, loss: Any) -> None:
        self.model.backward(loss)

    def step(self) -> float:
        self.model.step()
        norm = self.model.get_global_grad_norm()
        return float(norm) if norm is not None else float("nan")

    def full_trainable_state(self) -> dict:
        import deepspeed

        from llmft.train.methods import trainable_state

        params = _trainable(self.inner)
        ctx = deepspeed.zero.GatheredParameters(params, modifier_rank=None) if self.stage == 3 else nullcontext()
        with ctx:
            return {k: v.detach().cpu().clone() for k, v in trainable_state(self.inner).items()}

    def load_trainable(self, state: dict) -> None:
        import deepspeed

        params = _trainable(self.inner)
        ctx = deepspeed.zero.GatheredParameters(params, modifier_rank=0) if self.stage == 3 else nullcontext()
        with ctx:
            super().load_trainable(state)

    def optimizer_state(self) -> dict | None:
        return None

    def load_optimizer_state(self, state: dict) -> None:
        return None


class FSDPEngine(DDPEngine):
    """FSDP2 `fully_shard` per decoder layer then the whole model, on a device mesh Ray's group backs."""

    def __init__(self, model: Any, spec: TrainingSpec, total_steps: int, world_size: int, device: Any) -> None:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh(device.type, (world_size,))
        for module in model.modules():
            if type(module).__name__.endswith("DecoderLayer"):
                fully_shard(module, mesh=mesh)
        fully_shard(model, mesh=mesh)
        self.inner = self.model = model
        self.world_size = 1  # no DDP no_sync: FSDP reduces on its own
        self.accum = spec.optim.grad_accum
        self.max_norm = spec.optim.max_grad_norm
        self.optimizer = make_optimizer(_trainable(model), spec.optim)
        self.scheduler = make_scheduler(self.optimizer, spec.optim, total_steps)

    def step(self) -> float:
        import torch

        norm = torch.nn.utils.clip_grad_norm_(_trainable(self.inner), self.max_norm)
        if hasattr(norm, "full_tensor"):
            norm = norm.full_tensor()
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def full_trainable_state(self) -> dict:
        from peft import PeftModel, get_peft_model_state_dict
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        full = get_model_state_dict(self.inner, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if isinstance(self.inner, PeftModel):
            return get_peft_model_state_dict(self.inner, state_dict=full)
        return full

    def load_trainable(self, state: dict) -> None:
        from peft import PeftModel
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        if isinstance(self.inner, PeftModel):
            full = {k: v for k, v in self._peft_keys(state).items()}
        else:
            full = state
        # ranks other than 0 may hold an empty dict (a gathered snapshot lives on rank 0): rank 0's is broadcast
        set_model_state_dict(self.inner, full, options=StateDictOptions(full_state_dict=True, strict=False,
                                                                        broadcast_from_rank0=True))

    def _peft_keys(self, state: dict) -> dict:
        # adapter keys are saved without the adapter name: map them back onto the model's parameter names
        names = {n.replace(".default", ""): n for n, _ in self.inner.named_parameters()}
        return {names.get(k, k): v for k, v in state.items()}

    def optimizer_state(self) -> dict | None:
        """Adam moments gathered to full tensors keyed by parameter name (a collective: every rank
        calls it; rank 0 gets the state, the others an empty dict)."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        if not self.optimizer.state:  # before the first step: nothing to keep (and DCP would run a dummy step)
            return None
        full = get_optimizer_state_dict(self.inner, self.optimizer,
                                        options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return {"optimizer": full, "scheduler": self.scheduler.state_dict(), "format": "fsdp-full"}

    def load_optimizer_state(self, state: dict) -> None:
        """Re-shard rank 0's full optimizer state onto this mesh (a collective)."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        if state.get("format") != "fsdp-full":
            return  # a checkpoint from an engine whose optimizer state does not map onto FSDP's
        set_optimizer_state_dict(self.inner, self.optimizer, optim_state_dict=state["optimizer"],
                                 options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
        self.scheduler.load_state_dict(state["scheduler"])


def build_engine(model: Any, spec: TrainingSpec, total_steps: int, world_size: int, device: Any) -> DDPEngine:
    cls = {Strategy.ddp: DDPEngine, Strategy.deepspeed: DeepSpeedEngine, Strategy.fsdp: FSDPEngine}
    return cls[spec.distributed.strategy](model, spec, total_steps, world_size, device)

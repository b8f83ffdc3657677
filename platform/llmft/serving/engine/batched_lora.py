"""Many LoRA adapters in one forward pass at close to the base model's cost.

PEFT's `adapter_names` path loops over the adapters of a batch in every LoRA layer (index the
rows, two small matmuls, scatter back), so a batch over 8 adapters pays 8x the per-layer work.
`BatchedLora` instead concatenates the batch's adapters once per batch composition:

    A_cat = [A_1; ...; A_U]^T        (in, U*r)     B_cat = [s_1 B_1^T; ...; s_U B_U^T]   (U*r, out)

and adds `((x @ A_cat) * row_mask) @ B_cat` to the base layer's output, where `row_mask` keeps
each row's own adapter block (zero for base rows). That is three dense ops per layer whatever
the number of adapters, with no per-row copy of the weights (the same block-masking idea as
the segmented LoRA kernels of multi-LoRA servers, in plain torch so it runs on CPU and CUDA).

Adapters it cannot express this way (DoRA and other variants, LoRA bias, fan-in-fan-out
layers, embedding or conv LoRA, `modules_to_save`, trainable tokens) make `supports` false;
the engine then runs such a batch one adapter at a time through PEFT's own forward, so results
never depend on the fast path.
"""

from __future__ import annotations

from collections import OrderedDict
from contextlib import contextmanager
from typing import Any, Iterator


class BatchedLora:
    """Applies the adapters named per row of a batch through forward hooks on PEFT's LoRA layers.

    The PEFT model runs with its adapters disabled (each LoRA layer returns the base output);
    a hook per layer adds that layer's batched delta. Concatenated weights are cached per set
    of adapters (a small LRU) and dropped whenever an adapter is loaded or unloaded.
    """

    def __init__(self, peft_model: Any, cache_size: int = 8):
        self.peft = peft_model
        self.cache_size = cache_size
        self._stacks: OrderedDict[tuple[str, ...], dict[str, tuple[Any, Any, tuple[int, ...]]]] = OrderedDict()
        self._layers: list[tuple[str, Any]] | None = None
        self._supported: dict[frozenset[str], bool] = {}

    def forget(self) -> None:
        """Drop cached weights and answers (an adapter was loaded or deleted)."""
        self._stacks.clear()
        self._supported.clear()
        self._layers = None

    def layers(self) -> list[tuple[str, Any]]:
        from peft.tuners.lora import LoraLayer

        if self._layers is None:
            self._layers = [(name, m) for name, m in self.peft.named_modules() if isinstance(m, LoraLayer)]
        return self._layers

    def supports(self, names: set[str]) -> bool:
        """Whether every named adapter is plain LoRA on linear layers (else the engine runs it alone)."""
        key = frozenset(names)
        if key not in self._supported:
            self._supported[key] = all(self._plain_lora(name) for name in names)
        return self._supported[key]

    def has_variant(self, names: set[str]) -> bool:
        """Whether any named adapter is a LoRA variant (DoRA, ...), which PEFT cannot mix in a batch."""
        return any(name in layer.lora_variant for _, layer in self.layers() for name in names)

    def _plain_lora(self, name: str) -> bool:
        import torch

        config = self.peft.peft_config.get(name)
        if config is None or getattr(config, "modules_to_save", None) \
                or getattr(config, "trainable_token_indices", None):
            return False
        for _, layer in self.layers():
            if name not in layer.lora_A:
                if name in getattr(layer, "lora_embedding_A", {}):
                    return False
                continue
            if (not isinstance(layer.lora_A[name], torch.nn.Linear) or name in layer.lora_variant
                    or layer.lora_bias.get(name) or getattr(layer, "fan_in_fan_out", False)):
                return False
        return True

    def _stack(self, adapters: tuple[str, ...]) -> dict[str, tuple[Any, Any, tuple[int, ...]]]:
        """Per layer path: (A_cat (in, U*r), B_cat (U*r, out), the rank of each block), scaling folded
        into B; an adapter that does not target the layer gets an empty block. Layers no adapter
        targets are left out."""
        import torch

        cached = self._stacks.get(adapters)
        if cached is not None:
            self._stacks.move_to_end(adapters)
            return cached
        stacks: dict[str, tuple[Any, Any, tuple[int, ...]]] = {}
        for path, layer in self.layers():
            present = [name for name in adapters if name in layer.lora_A]
            if not present:
                continue
            base = layer.get_base_layer()
            lora_dtype = layer.lora_A[present[0]].weight.dtype
            # compute in the base's dtype (bf16 on GPU); a quantized base computes in the adapter's
            dtype = base.weight.dtype if base.weight.dtype.is_floating_point else lora_dtype
            device = layer.lora_A[present[0]].weight.device
            blocks_a = [layer.lora_A[n].weight if n in layer.lora_A else torch.zeros(0, layer.in_features, device=device)
                        for n in adapters]  # (r, in)
            blocks_b = [layer.lora_B[n].weight * layer.scaling[n] if n in layer.lora_A
                        else torch.zeros(layer.out_features, 0, device=device) for n in adapters]  # (out, r)
            a_cat = torch.cat([a.to(dtype) for a in blocks_a], 0).t().contiguous()
            b_cat = torch.cat([b.to(dtype) for b in blocks_b], 1).t().contiguous()
            stacks[path] = (a_cat, b_cat, tuple(a.shape[0] for a in blocks_a))
        self._stacks[adapters] = stacks
        while len(self._stacks) > self.cache_size:
            self._stacks.popitem(last=False)
        return stacks

    @contextmanager
    def apply(self, row_adapters: list[str | None]) -> Iterator[None]:
        """Within the block, a forward of the PEFT model applies `row_adapters[i]` to row i
        (None: the base model alone). The batch size must stay len(row_adapters)."""
        import torch

        adapters = tuple(dict.fromkeys(n for n in row_adapters if n is not None))
        stacks = self._stack(adapters)
        uniform = all(n == adapters[0] for n in row_adapters) if adapters else False
        masks: dict[tuple, Any] = {}

        def row_mask(rank_sizes: tuple[int, ...], dtype: Any, device: Any) -> Any:
            key = (rank_sizes, dtype, device)
            if key not in masks:
                offsets = [sum(rank_sizes[:i]) for i in range(len(rank_sizes))]
                mask = torch.zeros(len(row_adapters), 1, sum(rank_sizes), dtype=dtype, device=device)
                for row, name in enumerate(row_adapters):
                    if name is not None:
                        i = adapters.index(name)
                        mask[row, 0, offsets[i]:offsets[i] + rank_sizes[i]] = 1
                masks[key] = mask
            return masks[key]

        def hook_for(a_cat: Any, b_cat: Any, rank_sizes: tuple[int, ...]):
            def add_delta(module: Any, args: tuple, out: Any) -> Any:
                x = args[0]
                if x.dim() != 3 or x.shape[0] != len(row_adapters):  # (batch, tokens, features) expected
                    raise RuntimeError(f"batched LoRA was set up for {len(row_adapters)} rows of (tokens, "
                                       f"features), got an input of shape {tuple(x.shape)}")
                h = x.to(a_cat.dtype) @ a_cat
                if not uniform:
                    h = h * row_mask(rank_sizes, h.dtype, h.device)
                delta = h @ b_cat
                return out + delta.to(out.dtype)
            return add_delta

        handles = []
        try:
            for path, layer in self.layers():
                if path in stacks:
                    handles.append(layer.register_forward_hook(hook_for(*stacks[path])))
            with self.peft.disable_adapter():
                yield
        finally:
            for handle in handles:
                handle.remove()

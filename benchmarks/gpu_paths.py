"""The production (CUDA) training paths on one GPU: every method x strategy the spec allows.

    python benchmarks/gpu_paths.py [--quick] [--medium]

Each case goes through the same code as a Ray Train worker (`load_trainable`, `build_engine`,
`micro_loss`) on one NCCL rank (world size 1: no Ray is needed to check the CUDA paths), with bf16
autocast, and reports loss before/after, tokens/s and peak GPU memory. `--medium` adds a ~110M
parameter random-init Llama so throughput is not all launch overhead. On a machine without CUDA
it says so and exits 0 (CI never has a GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bases import medium_base  # noqa: E402
from machine import machine  # noqa: E402

CASES = [  # (method, strategy, zero_stage, precision)
    ("lora", "ddp", 2, "fp32"), ("lora", "ddp", 2, "bf16"), ("qlora", "ddp", 2, "bf16"),
    ("prompt_tuning", "ddp", 2, "bf16"), ("full", "ddp", 2, "bf16"),
    ("lora", "deepspeed", 2, "bf16"), ("full", "deepspeed", 2, "bf16"), ("full", "deepspeed", 3, "bf16"),
    ("lora", "fsdp", 2, "bf16"), ("full", "fsdp", 2, "bf16"),
]


def rows(n: int) -> list[dict]:
    from llmft.demo.samples import generate_sample_dataset

    out = generate_sample_dataset(Path(tempfile.mkdtemp()) / "sample", seed=0)
    items = []
    for line in out["tickets"].read_bytes().splitlines():
        try:
            r = json.loads(line)
            if isinstance(r.get("prompt"), str) and isinstance(r.get("response"), str) and r["response"]:
                items.append({"id": r["id"], "prompt": f"<|user|>\n{r['prompt']}<|end|><|assistant|>\n",
                              "completion": r["response"] + "<|end|>"})
        except (ValueError, UnicodeDecodeError):
            continue
    return items[:n]


def run_case(base: str, method: str, strategy: str, stage: int, precision: str, data: list, steps: int) -> dict:
    import torch

    from llmft.config import TrainingSpec, spec_from_dict
    from llmft.train.data import collate_padded, tokenize_rows
    from llmft.train.loop import micro_loss
    from llmft.train.methods import load_trainable
    from llmft.train.strategies import build_engine, check_supported

    spec = spec_from_dict(TrainingSpec, {
        "name": "gpu", "tenant": "bench", "base_model": base, "dataset": "x", "method": method,
        "precision": precision, "distributed": {"strategy": strategy, "zero_stage": stage},
        "resources": {"use_gpu": True, "num_workers": 1}, "optim": {"learning_rate": 1e-3, "batch_size": 8},
        "quantization": {"compute_dtype": "bfloat16"}})
    check_supported(spec, torch.cuda.is_available())
    device = torch.device("cuda", 0)
    torch.cuda.reset_peak_memory_stats()
    model, tokenizer, _ = load_trainable(spec, device=device)
    if method != "qlora":
        model.to(device)
    engine = build_engine(model, spec, steps, 1, device)
    examples = tokenize_rows(tokenizer, data, 256).examples
    losses, tokens = [], 0
    torch.cuda.synchronize()
    started = None
    for step in range(steps):
        if step == 2:  # skip warm-up (kernel autotune, allocator) in the rate
            torch.cuda.synchronize()
            started, tokens = time.perf_counter(), 0
        batch = collate_padded(examples[(step * 8) % (len(examples) - 8):][:8], tokenizer.pad_token_id)
        batch = {k: (v.to(device) if hasattr(v, "to") else v) for k, v in batch.items()}
        loss = micro_loss(engine.model, batch, spec.precision, "cuda")
        engine.backward(loss)
        engine.step()
        losses.append(float(loss))
        tokens += int(batch["input_ids"].numel())
    torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return {"loss_first": round(losses[0], 3), "loss_last": round(losses[-1], 3),
            "tokens_per_s": round(tokens / seconds), "peak_mem_mib": round(torch.cuda.max_memory_allocated() / 2**20),
            "state_keys": len(engine.full_trainable_state())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--medium", action="store_true")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print(json.dumps({"benchmark": "gpu_paths", "skipped": "no CUDA device", "machine": machine()}))
        return
    import torch.distributed as dist

    os.environ.setdefault("LLMFT_HOME", tempfile.mkdtemp())
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29533", RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
    torch.cuda.set_device(0)
    dist.init_process_group("nccl", rank=0, world_size=1)
    from llmft.models import ensure_base

    tiny = ensure_base("tiny")
    bases = {"tiny": str(tiny)}
    if args.medium:
        bases["medium"] = str(medium_base(tiny, Path(tempfile.mkdtemp()) / "medium"))
    data = rows(400)
    steps = 12 if args.quick else 40
    results = {}
    for base_name, base in bases.items():
        for method, strategy, stage, precision in CASES:
            key = f"{base_name}/{method}/{strategy}{stage if strategy == 'deepspeed' else ''}/{precision}"
            try:
                results[key] = run_case(base, method, strategy, stage, precision, data, steps)
            except Exception as exc:  # noqa: BLE001 - record and go on to the next case
                results[key] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}",
                                "where": traceback.format_exc().splitlines()[-3][:200]}
            print(key, results[key], flush=True)
    dist.destroy_process_group()
    ok = sum("error" not in r for r in results.values())
    print(json.dumps({"benchmark": "gpu_paths", "cases_ok": ok, "cases": len(results), "results": results,
                      "machine": machine()}))


if __name__ == "__main__":
    main()

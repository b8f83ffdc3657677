"""Training benchmark, side by side in one run on the tiny model and the same variable-length data.

Figures: Ray Train (2 CPU workers, DDP/gloo) vs a plain single-process loop using both
cores (tokens/s in the training loop, start-up excluded); useful tokens/s with packing vs
padding; DP-LoRA vs plain LoRA seconds per step; seconds from SIGKILL of a Ray worker to
the next completed step. `--quick` runs short versions. The last line is JSON.
Run under `flock /tmp/llmft-ray.lock` on shared machines.
"""

from __future__ import annotations

import argparse
import json
import os
import platform as _platform
import random
import signal
import tempfile
import threading
import time
from pathlib import Path


def write_snapshot(out: Path, tokenizer, n: int, seed: int = 0) -> Path:
    """Curated-format Parquet with strongly varying answer lengths (what packing is for)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        topic = rng.choice(["password", "invoice", "printer", "refund", "router", "badge"])
        q = f"How do I fix my {topic}? " + " ".join(rng.choice(["please", "urgent", "again"]) for _ in range(rng.randint(0, 8)))
        a = " ".join(f"Step {k + 1}: open the {topic} page." for k in range(rng.choice([1, 1, 2, 3, 8, 14])))
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
        rows.append({"id": f"b{i:05d}", "split": "train" if i % 10 else "validation", "prompt": prompt,
                     "completion": a + tokenizer.eos_token})
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), out / "part-0.parquet")
    return out


def spec(base: str, name: str, steps: int, **kw):
    from llmft.config.training import TrainingSpec

    data = {"name": name, "tenant": "bench", "base_model": base, "dataset": "d", "method": "lora",
            "optim": {"max_steps": steps, "batch_size": 4, "learning_rate": 2e-3},
            "data": {"max_seq_len": 256, "packing": False, "validation_every": 10_000},
            "checkpoint": {"every_n_steps": 10_000, "keep_last": 1}, "resources": {"num_workers": 2}}
    for key, value in kw.items():
        data[key] = {**data[key], **value} if isinstance(data.get(key), dict) else value
    return TrainingSpec.model_validate(data)


def local(s, snap: Path, tmp: Path) -> dict:
    from llmft.train.runtime import LocalRuntime
    from llmft.train.worker import Session

    run_dir = tmp / f"local-{s.name}"
    return Session({"spec": s.model_dump(mode="json"), "run_uri": str(run_dir), "debug": {"log_every": 10**6}},
                   LocalRuntime(snap, run_dir)).run()


def recovery(base: str, snap: Path, tmp: Path, steps: int) -> float:
    """Kill rank 1 after the first checkpoint; seconds until the replacement rank 0 completes a step."""
    from llmft.train.trainer import fit

    pid_dir = tmp / "pids"
    rec: dict = {}

    def watch() -> None:
        while "recovered" not in rec:
            try:
                if "killed" not in rec and int((pid_dir / "rank1.step").read_text() or 0) >= 3:
                    rec["old"] = (pid_dir / "rank0.pid").read_text()
                    rec["killed"] = time.time()
                    os.kill(int((pid_dir / "rank1.pid").read_text()), signal.SIGKILL)
                elif "killed" in rec and (pid_dir / "rank0.pid").read_text() != rec["old"] and \
                        int((pid_dir / "rank0.step").read_text() or 0) > 2:
                    rec["recovered"] = time.time() - rec["killed"]
            except (FileNotFoundError, ValueError):
                pass
            time.sleep(0.05)

    threading.Thread(target=watch, daemon=True).start()
    s = spec(base, "recovery", steps, checkpoint={"every_n_steps": 2})
    fit(s, str(snap), str(tmp / "ray-recovery"), {"debug": {"pid_dir": str(pid_dir), "step_delay_s": 0.3}})
    return rec.get("recovered", float("nan"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--base", default="tiny", help="base model (default: the built-in tiny model)")
    args = parser.parse_args()
    steps = 12 if args.quick else 40
    import ray

    from llmft.models import ensure_base, load_tokenizer
    from llmft.train.trainer import fit

    base = str(ensure_base(args.base))
    tmp = Path(tempfile.mkdtemp(prefix="llmft-bench-train-"))
    snap = write_snapshot(tmp / "snap", load_tokenizer(base), 400 if args.quick else 1200)
    res: dict = {}
    plain = local(spec(base, "plain", steps, resources={"num_workers": 1, "torch_threads": 2}), snap, tmp)
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    try:
        t0 = time.perf_counter()
        on_ray = fit(spec(base, "ray", steps * 2 // 2), str(snap), str(tmp / "ray"))  # same steps; 2x rows/step
        res["ray_wall_s"] = round(time.perf_counter() - t0, 1)
        res["recovery_s"] = round(recovery(base, snap, tmp, 10), 1)
    finally:
        ray.shutdown()
    res["plain_tokens_per_s"] = round(plain["tokens_per_s"])
    res["ray_tokens_per_s"] = round(on_ray["tokens_per_s"])
    res["ray_vs_plain_tokens_ratio"] = round(on_ray["tokens_per_s"] / plain["tokens_per_s"], 3)
    one = {"resources": {"num_workers": 1, "torch_threads": 1}}  # 1 thread: steadiest for the A/B pairs below
    padded = local(spec(base, "pad", steps, **one), snap, tmp)
    packed = local(spec(base, "pack", steps, data={"packing": True}, **one), snap, tmp)
    res["padding_useful_tokens_per_s"] = round(padded["useful_tokens_per_s"])
    res["packing_useful_tokens_per_s"] = round(packed["useful_tokens_per_s"])
    res["plain_1thread_tokens_per_s"] = round(padded["tokens_per_s"])
    res["ray_vs_plain_1thread_tokens_ratio"] = round(on_ray["tokens_per_s"] / padded["tokens_per_s"], 3)
    res["packing_vs_padding_ratio"] = round(packed["useful_tokens_per_s"] / padded["useful_tokens_per_s"], 3)
    dp = local(spec(base, "dp", steps, privacy={"enabled": True, "target_epsilon": 8.0}, **one), snap, tmp)
    plain_step = padded["seconds"] / padded["steps"]
    dp_step = dp["seconds"] / dp["steps"]
    res["plain_lora_step_s"] = round(plain_step, 4)
    res["dp_lora_step_s"] = round(dp_step, 4)
    res["dp_vs_plain_step_ratio"] = round(dp_step / plain_step, 3)
    res["dp_epsilon"] = round(dp["epsilon"], 3)
    res.update({"steps": steps, "quick": args.quick, "cpu_count": os.cpu_count(), "machine": _platform.machine(),
                "python": _platform.python_version(),
                "note": "plain baseline = 1 process, 2 torch threads; DP batches are Poisson (expected size = batch_size), padded; plain baseline padded too"})
    print(json.dumps(res))


if __name__ == "__main__":
    main()

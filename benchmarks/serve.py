"""Serving benchmark: mixed-adapter batches vs per-request set_adapter, LoRA vs base, cold vs hot
adapters, and a blue-green flip + rollback under steady load on 127.0.0.1 (Ray Serve).

`--engine vllm|peft|both` also runs the engines side by side (same base, 8 adapters mixed, concurrency
1 / 8 / 32: tokens/s, p50/p95 latency, LoRA vs base), the flip on the chosen engine, and evaluation
prompts/s through Ray Data batch inference (one vLLM engine per actor) vs the HTTP path.
Run under the Ray lock: `flock /tmp/llmft-ray.lock python benchmarks/serve.py --quick [--medium] [--engine both]`.
The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine  # noqa: E402

PROMPTS = ["Hello, how do I", "My printer is broken and", "How do I reset my password?", "Thanks for the help with",
           "Where can I find my invoice", "The app crashes when I", "Can you explain the refund", "I cannot log in"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup(work: Path, base: Path | None = None, tag: str = "bench") -> tuple[Path, dict, object]:
    """The base (the tiny one unless given) and 8 published adapters (+ a second version of a0)."""
    from llmft.models.tiny import build_tiny_base
    from llmft.serving.engine.adapters import DirectoryAdapterSource
    from llmft.demo.random_adapters import publish_adapters

    if base is None:
        base = Path(os.environ.get("LLMFT_BENCH_BASE", Path.home() / ".cache" / "llmft-bench" / "tiny"))
        if not (base / "manifest.json").is_file():
            build_tiny_base(base, overwrite=True)
    source = DirectoryAdapterSource(work / f"adapters-{tag}")
    specs = [("bench", f"a{i}", "1") for i in range(8)] + [("bench", "a0", "2")]
    adapters = publish_adapters(source, base, work / f"scratch-{tag}", specs)
    return base, adapters, source


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def throughput_figures(base: Path, adapters: dict, n: int, max_tokens: int, repeats: int = 2) -> dict:
    """Requests/s for the same n requests (batches of 8) four ways, interleaved and best-of-`repeats`:
    base only; mixed over 8 adapters through BatchedLora; mixed through PEFT's adapter_names path;
    one request at a time with set_adapter (the swap baseline)."""
    import torch

    from llmft.serving.engine.interface import GenerationRequest, SamplingParams
    from llmft.serving.engine.peft_engine import PeftEngine

    params = SamplingParams(max_tokens=max_tokens)
    ads = [a for a in adapters.values() if a.version == "1"]
    batched = PeftEngine(str(base), max_adapters=8)
    peft_path = PeftEngine(str(base), max_adapters=8, batched_lora=False)
    reqs = [GenerationRequest(PROMPTS[i % len(PROMPTS)], ads[i % 8], params) for i in range(n)]
    base_reqs = [GenerationRequest(r.prompt, None, params) for r in reqs]
    for eng in (batched, peft_path):
        eng.generate(reqs[:8])  # warm: all 8 resident

    def in_batches(eng, rs) -> None:
        for i in range(0, n, 8):
            eng.generate(rs[i:i + 8])

    def swap() -> None:  # the baseline: one request at a time, set_adapter per request
        eng = peft_path
        with eng.lock, torch.no_grad():
            for r in reqs:
                eng.peft.set_adapter(r.adapter.peft_name)
                enc = eng.tokenizer([r.prompt], return_tensors="pt", add_special_tokens=False)
                eng.peft.generate(**enc, max_new_tokens=max_tokens, do_sample=False, temperature=None, top_p=None,
                                  top_k=None, pad_token_id=eng.tokenizer.pad_token_id)

    runs = {"base": lambda: in_batches(batched, base_reqs), "mixed": lambda: in_batches(batched, reqs),
            "mixed_peft": lambda: in_batches(peft_path, reqs), "swap": swap}
    best = {k: float("inf") for k in runs}
    for _ in range(repeats):
        for k, fn in runs.items():
            best[k] = min(best[k], _timed(fn))
    return {"requests": n, "max_tokens": max_tokens,
            **{f"{k}_rps": round(n / t, 2) for k, t in best.items()},
            "mixed_vs_swap_throughput_ratio": round(best["swap"] / best["mixed"], 2),
            "lora_vs_base_slowdown": round(best["mixed"] / best["base"], 3),
            "lora_vs_base_slowdown_peft_path": round(best["mixed_peft"] / best["base"], 3),
            "batched_vs_peft_mixed_speedup": round(best["mixed_peft"] / best["mixed"], 2)}


def cold_hot_figures(base: Path, adapters: dict) -> dict:
    """A fresh engine with room for one adapter; alternating two makes every other call cold."""
    from llmft.serving.engine.interface import GenerationRequest, SamplingParams
    from llmft.serving.engine.peft_engine import PeftEngine

    ads = [a for a in adapters.values() if a.version == "1"]
    cold, hot = [], []
    small = PeftEngine(str(base), max_adapters=1)
    params = SamplingParams(max_tokens=8)
    small.generate([GenerationRequest(PROMPTS[0], None, params)])
    for i in range(4):
        request = GenerationRequest(PROMPTS[0], ads[i % 2 + 2], params)
        cold.append(_timed(lambda r=request: small.generate([r])) * 1000)
        hot.append(_timed(lambda r=request: small.generate([r])) * 1000)
    return {"cold_ms": round(statistics.median(cold), 1), "hot_ms": round(statistics.median(hot), 1),
            "adapter_load_ms": round(statistics.median(small.cache.stats.load_ms), 1)}


def default_dtype() -> str:
    """bfloat16 where the CPU has native bf16 (AVX-512 BF16 or AMX) or a GPU is present, else float32."""
    try:
        import torch

        if torch.cuda.is_available():
            return "bfloat16"
    except ImportError:
        pass
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    return "bfloat16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "float32"


def make_engine(name: str, base: Path, dtype: str):
    if name == "vllm":
        from llmft.serving.engine.vllm_engine import VllmEngine

        return VllmEngine(str(base), max_adapters=8, max_loras=8, max_lora_rank=16, dtype=dtype, kv_cache_gib=2,
                          max_num_seqs=64)
    from llmft.serving.engine.peft_engine import PeftEngine

    return PeftEngine(str(base), max_adapters=8, dtype=dtype)


def engine_figures(name: str, base: Path, adapters: dict, max_tokens: int, dtype: str,
                   concurrencies: tuple[int, ...] = (1, 8, 32)) -> dict:
    """One engine behind the replica's in-process colour (PEFT: micro-batches of up to `c`; vLLM: every
    request straight into its running batch): tokens/s and p50/p95 latency at each concurrency, 8 adapters
    mixed; plus base only at the highest concurrency (LoRA vs base)."""
    import asyncio

    from llmft.serving.engine.interface import GenerationRequest, SamplingParams
    from llmft.serving.engine.replica import LocalColour, ReplicaCore

    t0 = time.perf_counter()
    engine = make_engine(name, base, dtype)
    start_s = time.perf_counter() - t0
    ads = [a for a in adapters.values() if a.version == "1"]
    params = SamplingParams(max_tokens=max_tokens)

    def run(c: int, with_adapters: bool) -> dict:
        n = max(2 * c, 16)
        reqs = [GenerationRequest(PROMPTS[i % len(PROMPTS)], ads[i % 8] if with_adapters else None, params)
                for i in range(n)]
        colour = LocalColour(ReplicaCore(engine, "blue"), max_batch=c, wait_s=0.005)

        async def drive() -> tuple[float, list[float], int]:
            sem, lat = asyncio.Semaphore(c), []

            async def one(r):
                async with sem:
                    t = time.perf_counter()
                    res = await colour.generate(r)
                    lat.append((time.perf_counter() - t) * 1000)
                    assert "error" not in res, res
                    return res["completion_tokens"]

            t = time.perf_counter()
            tokens = sum(await asyncio.gather(*(one(r) for r in reqs)))
            return time.perf_counter() - t, lat, tokens

        asyncio.run(drive())  # warm: adapters resident, kernels compiled
        wall, lat, tokens = asyncio.run(drive())
        lat.sort()
        return {"requests": n, "tokens_per_s": round(tokens / wall, 1), "p50_ms": round(statistics.median(lat), 1),
                "p95_ms": round(lat[int(0.95 * (len(lat) - 1))], 1)}

    out = {"dtype": dtype, "start_s": round(start_s, 1), "max_tokens": max_tokens}
    for c in concurrencies:
        out[f"c{c}"] = run(c, True)
    top = max(concurrencies)
    out[f"c{top}_base"] = run(top, False)
    out["lora_vs_base_slowdown"] = round(out[f"c{top}_base"]["tokens_per_s"] / out[f"c{top}"]["tokens_per_s"], 3)
    if hasattr(engine, "shutdown"):
        engine.shutdown()
    return out


def compare_engines(engines: list[str], base: Path, adapters: dict, max_tokens: int, dtype: str) -> dict:
    figures = {name: engine_figures(name, base, adapters, max_tokens, dtype) for name in engines}
    for name, f in figures.items():
        print(json.dumps({f"engine_{name}": f}), flush=True)
    out: dict = {"engines": figures}
    if "vllm" in figures:
        out["vllm_lora_vs_base_slowdown"] = figures["vllm"]["lora_vs_base_slowdown"]
    if len(figures) == 2:
        out["vllm_vs_peft_throughput_c32"] = round(figures["vllm"]["c32"]["tokens_per_s"]
                                                   / figures["peft"]["c32"]["tokens_per_s"], 2)
    return out


def eval_figures(base: Path, adapters: dict, n: int, max_tokens: int) -> dict:
    """Evaluation prompts/s: a Ray Data job with one vLLM engine per actor (start-up included) vs the HTTP
    path (the local gateway over the PEFT engine, 16 in flight), on the same prompts and adapters."""
    import ray

    from llmft.evaluation.batch import BatchInference
    from llmft.evaluation.client import EndpointClient, run_sync
    from llmft.serving.endpoint import LocalEndpoint

    named = {a.name: a for a in adapters.values() if a.version == "1"}
    prompts = [f"{PROMPTS[i % len(PROMPTS)]} (case {i})" for i in range(n)]
    jobs = [(name, prompts[i::len(named)], max_tokens, "completions") for i, name in enumerate(named)]
    with LocalEndpoint(str(base), named) as ep:
        t = time.perf_counter()
        for name, ps, mt, api in jobs:
            run_sync(EndpointClient(ep.url, name, concurrency=16).generate(ps, max_tokens=mt, api=api))
        http_s = time.perf_counter() - t
    ray.init(address="local", num_cpus=2, log_to_driver=False)
    try:
        t = time.perf_counter()
        runs = BatchInference(str(base), named, actors=1, engine_options={"kv_cache_gib": 1}).run(jobs)
        batch_s = time.perf_counter() - t
    finally:
        ray.shutdown()
    assert sum(r.failed for r in runs) == 0
    return {"eval_prompts": n, "eval_max_tokens": max_tokens, "http_eval_prompts_per_s": round(n / http_s, 2),
            "batch_eval_prompts_per_s": round(n / batch_s, 2), "batch_eval_includes_engine_start": True,
            "batch_eval_10k_projected_min": round(10000 / (n / batch_s) / 60, 1)}


def flip_figures(base: Path, source, work: Path, load_s: float, rate: float, engine: str = "peft") -> dict:
    import httpx
    import ray
    from ray import serve

    from llmft.serving.app_config import AppArgs, serve_config
    from llmft.serving.rollout.deployment_manager import wait_ready
    from llmft.serving.rollout.manager import RolloutManager
    from llmft.serving.rollout.slo import Slo
    from llmft.serving.rollout.serve_backend import ServeBackend, serve_client
    from llmft.store import Store

    store = Store(f"sqlite:///{work / 'llmft.db'}")
    store.create_tenant("bench", "bench")
    user_key = store.create_api_key("bench", "developer", "bench")[0]
    admin_key = store.create_api_key("bench", "admin", "bench")[0]
    dash, port = _free_port(), _free_port()
    ray.init(address="local", num_cpus=2, include_dashboard=True, dashboard_port=dash, log_to_driver=False)
    try:
        args = AppArgs(base_model=str(base), base_name="tiny", adapter_source=f"dir:{source.root}",
                       db_url=store.url, replica_cpus=0.5, shadow_log=str(work / "shadow.jsonl"), engine=engine,
                       vllm={"kv_cache_gib": 0.5, "max_num_seqs": 32})
        traffic = {"colours": {"blue": {"pins": {"bench/a0": "1"}, "ready": True}, "green": {"pins": {}}}}
        config = serve_config("llm", args, traffic, port=port)
        config["applications"][0]["deployments"][0]["ray_actor_options"] = {"num_cpus": 0.25}
        dashboard_url, url = f"http://127.0.0.1:{dash}", f"http://127.0.0.1:{port}"
        serve_client(dashboard_url).deploy_applications(config)
        wait_ready(url, 240)
        mgr = RolloutManager(ServeBackend(base_url=url, dashboard_url=dashboard_url, app_name="llm",
                                          api_key=admin_key))
        results: list[tuple[float, int, str | None]] = []
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {user_key}"}) as http:
                while not stop.is_set():
                    t0 = time.perf_counter()
                    try:
                        r = http.post("/v1/completions", json={"model": "a0", "prompt": "Hello", "max_tokens": 4,
                                                               "temperature": 0})
                        results.append((time.time(), r.status_code, r.headers.get("x-llmft-adapter-version")))
                    except httpx.HTTPError:
                        results.append((time.time(), 0, None))
                    time.sleep(max(0.0, 1 / rate - (time.perf_counter() - t0)))

        workers = [threading.Thread(target=load) for _ in range(2)]
        for w in workers:
            w.start()
        time.sleep(load_s)
        report = mgr.deploy("bench/a0", "2", model="a0", smoke_prompts=["Hello"], slo=Slo())
        time.sleep(load_s)
        rollback_s = mgr.rollback("benchmark rollback")
        time.sleep(load_s)
        stop.set()
        for w in workers:
            w.join()
        return {"flip_engine": engine, "flip_requests": len(results), "flip_failed_requests": sum(r[1] != 200 for r in results),
                "flip_s": round(report.flip_s, 3), "rollback_s": round(rollback_s, 3),
                "load_rps": round(len(results) / max(1e-9, results[-1][0] - results[0][0]), 1) if results else 0,
                "versions_seen": sorted({r[2] for r in results if r[2]})}
    finally:
        serve.shutdown()
        ray.shutdown()


def medium_base_dir(base: Path, work: Path) -> Path:
    from bases import medium_base

    return medium_base(base, work / "medium")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Short run (a minute or two).")
    parser.add_argument("--medium", action="store_true",
                        help="Also measure throughput on a ~110M Llama (random init), where matmuls dominate.")
    parser.add_argument("--engine", choices=["peft", "vllm", "both"], default="peft",
                        help="Engine(s) to compare side by side, and the engine the flip runs on (both: vllm).")
    parser.add_argument("--dtype", default=None, help="Engine dtype for the comparison (default: bfloat16 where "
                                                      "the CPU has native bf16, else float32).")
    opts = parser.parse_args()
    n, max_tokens, load_s = (32, 16, 3.0) if opts.quick else (128, 32, 8.0)
    with tempfile.TemporaryDirectory(prefix="llmft-bench-serve-") as tmp:
        work = Path(tmp)
        os.environ["LLMFT_HOME"] = str(work / "home")
        base, adapters, source = setup(work)
        figures = {**throughput_figures(base, adapters, n, max_tokens), **cold_hot_figures(base, adapters)}
        print(json.dumps({"engine": figures}), flush=True)
        medium = {}
        if opts.medium:
            mbase, madapters, _ = setup(work, medium_base_dir(base, work), tag="medium")
            medium = throughput_figures(mbase, madapters, 16 if opts.quick else 32, max_tokens)
            print(json.dumps({"engine_110m": medium}), flush=True)
        compared: dict = {}
        if opts.engine != "peft":
            engines = ["peft", "vllm"] if opts.engine == "both" else ["vllm"]
            dtype = opts.dtype or default_dtype()
            compared = compare_engines(engines, base, adapters, max_tokens, dtype)
            if opts.medium:
                mbase, madapters, _ = setup(work, medium_base_dir(base, work), tag="medium-engines")
                compared["medium_110m"] = compare_engines(engines, mbase, madapters, max_tokens, dtype)
                for key in ("vllm_vs_peft_throughput_c32", "vllm_lora_vs_base_slowdown"):  # the goals are on --medium
                    if key in compared["medium_110m"]:
                        compared[f"tiny_{key}"], compared[key] = compared.get(key), compared["medium_110m"][key]
            compared.update(eval_figures(base, adapters, 64 if opts.quick else 256, max_tokens))
        flips = flip_figures(base, source, work, load_s, rate=8.0, engine="vllm" if opts.engine != "peft" else "peft")
    out = {"benchmark": "serve", "quick": opts.quick, **figures, **flips, **compared,
           **({"medium_110m": medium} if medium else {}),
           "goals": {"mixed_vs_swap_throughput_ratio": ">= 3", "lora_vs_base_slowdown": "<= 1.3",
                     "flip_failed_requests": "0", "flip_s": "<= 1", "rollback_s": "<= 5",
                     "vllm_vs_peft_throughput_c32": ">= 5 (--medium)", "vllm_lora_vs_base_slowdown": "<= 1.3",
                     "batch_eval_10k_projected_min": "<= 60"},
           "machine": machine()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()

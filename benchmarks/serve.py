"""Serving benchmark: mixed-adapter batches vs per-request set_adapter, LoRA vs base, cold vs hot
adapters, and a blue-green flip + rollback under steady load on 127.0.0.1 (Ray Serve).

Run under the Ray lock: `flock /tmp/llmft-ray.lock python benchmarks/serve.py --quick`.
The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

PROMPTS = ["Hello, how do I", "My printer is broken and", "How do I reset my password?", "Thanks for the help with",
           "Where can I find my invoice", "The app crashes when I", "Can you explain the refund", "I cannot log in"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup(work: Path) -> tuple[Path, dict, object]:
    from llmft.models.tiny import build_tiny_base
    from llmft.serving.adapters import DirectoryAdapterSource
    from llmft.serving.demo_adapters import publish_adapters

    base = Path(os.environ.get("LLMFT_BENCH_BASE", Path.home() / ".cache" / "llmft-bench" / "tiny"))
    if not (base / "manifest.json").is_file():
        build_tiny_base(base, overwrite=True)
    source = DirectoryAdapterSource(work / "adapters")
    specs = [("bench", f"a{i}", "1") for i in range(8)] + [("bench", "a0", "2")]
    adapters = publish_adapters(source, base, work / "scratch", specs)
    return base, adapters, source


def engine_figures(base: Path, adapters: dict, n: int, max_tokens: int) -> dict:
    import torch

    from llmft.serving.engine import GenRequest, PeftEngine, SamplingParams

    params = SamplingParams(max_tokens=max_tokens)
    ads = [a for a in adapters.values() if a.version == "1"]
    eng = PeftEngine(str(base), max_adapters=8)
    reqs = [GenRequest(PROMPTS[i % len(PROMPTS)], ads[i % 8], params) for i in range(n)]
    eng.generate(reqs[:8])  # warm: all 8 resident

    def timed(fn) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    def mixed() -> None:
        for i in range(0, n, 8):
            eng.generate(reqs[i:i + 8])

    def swap() -> None:  # the baseline: one request at a time, set_adapter per request
        with eng.lock, torch.no_grad():
            for r in reqs:
                eng.peft.set_adapter(r.adapter.peft_name)
                enc = eng.tokenizer([r.prompt], return_tensors="pt", add_special_tokens=False)
                eng.peft.generate(**enc, max_new_tokens=max_tokens, do_sample=False, temperature=None, top_p=None,
                                  top_k=None, pad_token_id=eng.tokenizer.pad_token_id)

    base_reqs = [GenRequest(r.prompt, None, params) for r in reqs]

    def base_only() -> None:
        for i in range(0, n, 8):
            eng.generate(base_reqs[i:i + 8])

    t_mixed, t_swap, t_base = timed(mixed), timed(swap), timed(base_only)
    t_mixed = min(t_mixed, timed(mixed))
    t_base = min(t_base, timed(base_only))
    # cold vs hot: a fresh engine with room for one adapter; alternate two so every other call is cold
    cold, hot = [], []
    small = PeftEngine(str(base), max_adapters=1)
    one = GenRequest(PROMPTS[0], None, SamplingParams(max_tokens=8))
    small.generate([one])
    for i in range(4):
        a = ads[i % 2 + 2]
        cold.append(timed(lambda: small.generate([GenRequest(PROMPTS[0], a, one.params)])) * 1000)
        hot.append(timed(lambda: small.generate([GenRequest(PROMPTS[0], a, one.params)])) * 1000)
    return {"requests": n, "max_tokens": max_tokens, "mixed_rps": round(n / t_mixed, 2),
            "swap_rps": round(n / t_swap, 2), "mixed_vs_swap_throughput_ratio": round(t_swap / t_mixed, 2),
            "lora_vs_base_slowdown": round(t_mixed / t_base, 3), "base_rps": round(n / t_base, 2),
            "cold_ms": round(statistics.median(cold), 1), "hot_ms": round(statistics.median(hot), 1),
            "adapter_load_ms": round(statistics.median(small.cache.stats.load_ms), 1)}


def flip_figures(base: Path, source, work: Path, load_s: float, rate: float) -> dict:
    import httpx
    import ray
    from ray import serve

    from llmft.serving.app_config import AppArgs, serve_config
    from llmft.serving.deployments import wait_ready
    from llmft.serving.rollout import RolloutManager, Slo
    from llmft.serving.serve_backend import ServeBackend, serve_client
    from llmft.store import Store

    store = Store(f"sqlite:///{work / 'llmft.db'}")
    store.create_tenant("bench", "bench")
    user_key = store.create_api_key("bench", "developer", "bench")[0]
    admin_key = store.create_api_key("bench", "admin", "bench")[0]
    dash, port = _free_port(), _free_port()
    ray.init(address="local", num_cpus=2, include_dashboard=True, dashboard_port=dash, log_to_driver=False)
    try:
        args = AppArgs(base_model=str(base), base_name="tiny", adapter_source=f"dir:{source.root}",
                       db_url=store.url, replica_cpus=0.5, shadow_log=str(work / "shadow.jsonl"))
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
        return {"flip_requests": len(results), "flip_failed_requests": sum(r[1] != 200 for r in results),
                "flip_s": round(report.flip_s, 3), "rollback_s": round(rollback_s, 3),
                "load_rps": round(len(results) / max(1e-9, results[-1][0] - results[0][0]), 1) if results else 0,
                "versions_seen": sorted({r[2] for r in results if r[2]})}
    finally:
        serve.shutdown()
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Short run (a minute or two).")
    opts = parser.parse_args()
    n, max_tokens, load_s = (32, 16, 3.0) if opts.quick else (128, 32, 8.0)
    with tempfile.TemporaryDirectory(prefix="llmft-bench-serve-") as tmp:
        work = Path(tmp)
        os.environ["LLMFT_HOME"] = str(work / "home")
        base, adapters, source = setup(work)
        figures = engine_figures(base, adapters, n, max_tokens)
        print(json.dumps({"engine": figures}))
        flips = flip_figures(base, source, work, load_s, rate=8.0)
    import torch

    out = {"benchmark": "serve", "quick": opts.quick, **figures, **flips,
           "goals": {"mixed_vs_swap_throughput_ratio": ">= 3", "lora_vs_base_slowdown": "<= 1.3",
                     "flip_failed_requests": "0", "flip_s": "<= 1", "rollback_s": "<= 5"},
           "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                       "platform": platform.platform(), "python": platform.python_version()}}
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""The driver's memory during a full curation run: flat from 100k to 1M input rows (no row through the driver).

    python benchmarks/curation.py [--quick] [--sizes 100000,1000000] [--lock /tmp/llmft-ray.lock]

Generates prompt/response rows (JSONL; ~5% exact and ~5% near duplicates), registers
them as a raw snapshot, then runs the whole curation job (`llmft.data.curation.run`:
read, PII, filters, exact + near dedupe, alpaca format, split, part files, manifest,
report) on a local Ray (2 CPUs). The driver's peak RSS during each run is the
kernel's high-water mark (VmHWM, reset at the start of the run) and, where that is
unavailable, a thread's samples every 50 ms; the figures are that peak and its rise
over the RSS before the run. Generation and registration happen outside the Ray
lock; the Ray part holds it (`flock`). `--quick` skips the 1M run. The last line is
JSON with `driver_peak_rss_mb_100k` and `driver_peak_rss_mb_1m` (and each run's
curated snapshot id, `snapshot_100k` / `snapshot_1m`: the same input gives the same id).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _high_water(reset: bool = False) -> int:
    """The kernel's peak RSS of this process (VmHWM, bytes; 0 where unavailable); `reset` restarts it
    at the current RSS (`/proc/self/clear_refs` 5), so a short spike between samples is not missed."""
    try:
        if reset:
            Path("/proc/self/clear_refs").write_text("5")
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class RssSampler:
    """Peak RSS of this process while the `with` block runs: the kernel's high-water mark where Linux
    gives it, else (and as well) sampled in a thread."""

    def __init__(self, every: float = 0.05):
        import psutil

        self.proc, self.every, self.peak, self.start = psutil.Process(), every, 0, 0
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.every)

    def __enter__(self) -> "RssSampler":
        _high_water(reset=True)
        self.start = self.peak = self.proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss, _high_water())


def _words(rng: random.Random, n: int) -> list[str]:
    syll = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "si", "da", "pe", "qu", "zo", "fi", "gu", "ha", "je"]
    return ["".join(rng.choice(syll) for _ in range(rng.randint(2, 4))) for _ in range(n)]


def generate(path: Path, n: int, seed: int = 0) -> None:
    """n JSONL rows {id, prompt, response}; ~5% exact copies and ~5% one-word edits of earlier rows."""
    rng = random.Random(seed)
    vocab = _words(rng, 20_000)
    recent: list[tuple[str, str]] = []
    with open(path, "w") as fh:
        for i in range(n):
            u = rng.random()
            if recent and u < 0.05:
                prompt, response = rng.choice(recent)
            elif recent and u < 0.10:
                prompt, response = rng.choice(recent)
                words = response.split()
                words[rng.randrange(len(words))] = rng.choice(vocab)
                response = " ".join(words)
            else:
                prompt = "How do I " + " ".join(rng.choices(vocab, k=10)) + "?"
                response = " ".join(rng.choices(vocab, k=40)) + "."
                recent.append((prompt, response))
                if len(recent) > 1000:
                    recent.pop(rng.randrange(len(recent)))
            fh.write(json.dumps({"id": f"r{i:08d}", "prompt": prompt, "response": response}) + "\n")


@contextlib.contextmanager
def ray_lock(path: str):
    if not path:  # the caller holds it (e.g. `flock LOCK python benchmarks/curation.py --lock ''`)
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="skip the 1M run")
    ap.add_argument("--sizes", default=None, help="comma-separated input row counts (default 100000,1000000)")
    ap.add_argument("--lock", default="/tmp/llmft-ray.lock", help="file lock held while Ray runs ('' = none)")
    ap.add_argument("--num-blocks", type=int, default=None)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else [100_000] + ([] if args.quick else [1_000_000])

    work = Path(tempfile.mkdtemp(prefix="llmft-bench-curation-"))
    os.environ["LLMFT_HOME"] = str(work / "home")
    for var in ("LLMFT_DB_URL", "LLMFT_MLFLOW_URI", "LLMFT_STORAGE", "LLMFT_API_URL"):
        os.environ.pop(var, None)
    from llmft.config import CurationSpec, DatasetSpec
    from llmft.data import curation, snapshots
    from llmft.store import Store
    from machine import machine

    store = Store()
    store.create_tenant("bench", "admin")
    for n in sizes:
        t0 = time.perf_counter()
        src = work / f"rows-{n}.jsonl"
        generate(src, n)
        snapshots.register(DatasetSpec(name=f"rows-{n}", tenant="bench", source=str(src)), store, "bench")
        src.unlink()
        print(f"generated + registered {n:,} rows in {time.perf_counter() - t0:.0f}s", flush=True)

    result: dict = {}
    with ray_lock(args.lock):
        import ray

        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        try:
            for n in sizes:
                spec = CurationSpec(tenant="bench", source=f"rows-{n}", output=f"curated-{n}",
                                    format={"style": "alpaca"}, dedupe={"threshold": 0.8})
                t0 = time.perf_counter()
                with RssSampler() as rss:
                    out = curation.run(spec, store, "bench", num_blocks=args.num_blocks)
                seconds = time.perf_counter() - t0
                label = f"{n // 1_000_000}m" if n >= 1_000_000 and n % 1_000_000 == 0 else f"{n // 1000}k"
                dedupe = next(s for s in out["steps"] if s["step"] == "dedupe")
                result[f"driver_peak_rss_mb_{label}"] = round(rss.peak / 2**20, 1)
                result[f"driver_rss_rise_mb_{label}"] = round((rss.peak - rss.start) / 2**20, 1)
                result[f"seconds_{label}"] = round(seconds, 1)
                result[f"output_rows_{label}"] = out["rows"]
                result[f"snapshot_{label}"] = out["snapshot"]["id"]
                print(f"curated {n:,} rows -> {out['rows']:,} ({out['files']} files, dedupe dropped "
                      f"{dedupe['dropped']}) in {seconds:.0f}s; driver RSS peak {rss.peak / 2**20:.0f} MiB "
                      f"(+{(rss.peak - rss.start) / 2**20:.0f} MiB over the start of the run)", flush=True)
        finally:
            ray.shutdown()
    result["machine"] = machine()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Metadata store + audit log: audited writes/s with one vs two writer processes, and verify speed.

    python benchmarks/store.py [--quick]

Each write is a real state change (a job created, then queued), each with its audit
record in the same SQLite transaction. Two processes contend for the write lock;
the ratio shows what concurrency costs (or gains) on this disk.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine  # noqa: E402


def _writer(url: str, worker: int, n: int) -> None:
    from llmft.store import Store

    store = Store(url)
    for i in range(n):
        job = store.create_job(tenant="bench", kind="training", name=f"w{worker}-{i}", spec={"i": i}, actor="bench")
        store.transition_job(job.id, "queued", actor="bench")


def run(processes: int, per_process: int, root: Path) -> tuple[float, str]:
    from llmft.store import Store

    url = f"sqlite:///{root / f'bench-{processes}.db'}"
    Store(url).create_tenant("bench", "bench")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(url, w, per_process)) for w in range(processes)]
    started = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - started
    if any(p.exitcode for p in procs):
        raise SystemExit("a writer process failed")
    return processes * per_process * 2 / elapsed, url


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 150 if args.quick else 1000
    with tempfile.TemporaryDirectory() as tmp:
        one, _ = run(1, n, Path(tmp))
        two, url = run(2, n // 2, Path(tmp))
        from llmft.store import Store

        store = Store(url)
        started = time.perf_counter()
        verdict = store.audit.verify()
        verify_s = time.perf_counter() - started
    assert verdict.ok
    result = {"benchmark": "store", "writes_per_s_1proc": round(one, 1), "writes_per_s_2proc": round(two, 1),
              "two_vs_one_ratio": round(two / one, 2), "audit_records": verdict.records,
              "audit_verify_records_per_s": round(verdict.records / verify_s), "machine": machine()}
    print(f"audited writes/s: 1 process {one:.0f}, 2 processes {two:.0f} (x{two / one:.2f}); "
          f"verify {verdict.records} records in {verify_s * 1000:.0f} ms")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

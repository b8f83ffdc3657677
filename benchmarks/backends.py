"""Production backends vs embedded ones: audited store writes on PostgreSQL 15 vs SQLite, 1 and 4 writer processes.

    python benchmarks/backends.py [--quick]

Each write is a real state change with its audit record in the same transaction (a job
created, then queued). Writers are separate processes on one database; on SQLite they
serialise on BEGIN IMMEDIATE, on Postgres on the store's transaction-scoped advisory lock
(the audit chain and read-modify-writes need one writer at a time on either). Postgres is a
throwaway cluster started here (tests/backend_services.py) with its default durability
(fsync on), on the same disk as the SQLite file. Audit verify rate: records re-hashed per
second, read from each database.

Checkpoint save/restore local vs S3: a real sealed checkpoint (LoRA adapter, optimizer, RNG) uploaded,
then listed, copied in, re-hashed and loaded (llmft.train.checkpointing), on a local directory and on
moto's S3-compatible server on loopback. Node loss is not measured in this round: its keys are null.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from machine import machine  # noqa: E402


def _writer(url: str, worker: int, n: int, go) -> None:  # noqa: ANN001
    from llmft.store import Store

    store = Store(url)
    go.wait()
    for i in range(n):
        job = store.create_job(tenant="bench", kind="training", name=f"w{worker}-{i}", spec={"i": i}, actor="bench")
        store.transition_job(job.id, "queued", actor="bench")


def writes_per_s(url: str, processes: int, total: int) -> float:
    """Audited writes/s of `processes` writer processes sharing `total` create+queue pairs."""
    from llmft.store import Store

    store = Store(url)
    store.create_tenant("bench", "bench")
    store.close()
    ctx = mp.get_context("spawn")
    go = ctx.Event()
    per = total // processes
    procs = [ctx.Process(target=_writer, args=(url, w, per, go)) for w in range(processes)]
    for p in procs:
        p.start()
    time.sleep(3 + processes)  # let every writer import and connect before the clock starts
    started = time.perf_counter()
    go.set()
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - started
    if any(p.exitcode for p in procs):
        raise SystemExit("a writer process failed")
    return processes * per * 2 / elapsed


def verify_rate(url: str) -> tuple[int, float]:
    from llmft.store import Store

    store = Store(url)
    started = time.perf_counter()
    verdict = store.audit.verify()
    elapsed = time.perf_counter() - started
    store.close()
    assert verdict.ok, verdict
    return verdict.records, verdict.records / elapsed


def _checkpoint(tmp: Path) -> Path:
    """One real training checkpoint (LoRA r=8 on the tiny base, with optimizer and RNG state), sealed by its manifest."""
    import torch
    from peft import LoraConfig, get_peft_model

    from llmft.models.loading import load_base
    from llmft.models.tiny import build_tiny_base
    from llmft.train import checkpointing as ck

    base = build_tiny_base(tmp / "tiny", seed=0)["path"]
    model, _, _ = load_base(base)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    trainable = {k: v for k, v in model.state_dict().items() if "lora_" in k}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
    model(torch.randint(0, 100, (2, 16)), labels=torch.randint(0, 100, (2, 16))).loss.backward()
    opt.step()
    out = tmp / "src" / ck.dir_name(40)
    ck.save(out, model=model, trainable=trainable, optimizer_state=opt.state_dict(), rng=[ck.rng_state()],
            state=ck.TrainState(step=40))
    return out


def checkpoint_times(tmp: Path, repeats: int) -> dict:
    """Median save (upload of a sealed checkpoint) and restore (list, copy in, re-hash, load) on local vs S3 storage.

    S3 is moto's server on loopback (tests/backend_services.py): the figure is the cost of the
    object-store path itself (HTTP, per-object requests, the copy into the local cache), not a network.
    """
    import os
    import statistics

    import pyarrow.fs as pafs

    from llmft import storage
    from llmft.train import checkpointing as ck
    from tests.backend_services import S3Server, s3_missing

    missing = s3_missing()
    if missing:
        raise SystemExit(f"backends benchmark: {missing}")
    src = _checkpoint(tmp)
    server = S3Server().start()
    try:
        server.bucket("llmft-bench")
        os.environ.update(server.env("s3://llmft-bench/llmft"))
        out: dict = {"checkpoint_bytes": sum(p.stat().st_size for p in src.rglob("*") if p.is_file())}
        for label, root in (("local", str(tmp / "local-store")), ("s3", "s3://llmft-bench/llmft/train")):
            saves, restores = [], []
            for i in range(repeats):
                run = f"{root}/run-{i}"
                fs, path = storage.filesystem(run)
                fs.create_dir(path, recursive=True)
                started = time.perf_counter()
                pafs.copy_files(str(src), f"{path}/{src.name}", source_filesystem=pafs.LocalFileSystem(),
                                destination_filesystem=fs)
                saves.append(time.perf_counter() - started)
                started = time.perf_counter()
                loaded = ck.latest_good([u for _, u in ck.list_checkpoints(run)], tmp / f"scratch-{label}-{i}",
                                        log=lambda m: None)
                restores.append(time.perf_counter() - started)
                assert loaded is not None and loaded.state.step == 40
            out[f"{label}_checkpoint_save_s"] = round(statistics.median(saves), 4)
            out[f"{label}_checkpoint_restore_s"] = round(statistics.median(restores), 4)
        return out
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    total = 120 if args.quick else 800
    from tests.backend_services import PostgresCluster, postgres_missing

    missing = postgres_missing()
    if missing:
        raise SystemExit(f"backends benchmark: {missing}")
    cluster = PostgresCluster(durable=True).start()
    figures: dict = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for procs in (1, 4):
                sqlite = f"sqlite:///{Path(tmp) / f'bench-{procs}.db'}"
                pg = cluster.create_database(f"bench_{procs}")
                figures[f"sqlite_writes_per_s_{procs}proc"] = round(writes_per_s(sqlite, procs, total), 1)
                figures[f"pg_writes_per_s_{procs}proc"] = round(writes_per_s(pg, procs, total), 1)
            records, rate = verify_rate(sqlite)
            figures["sqlite_audit_verify_records_per_s"] = round(rate)
            records_pg, rate_pg = verify_rate(pg)
            figures["pg_audit_verify_records_per_s"] = round(rate_pg)
            figures["audit_records"] = records
            assert records == records_pg
    finally:
        cluster.stop()
    with tempfile.TemporaryDirectory() as tmp:
        figures.update(checkpoint_times(Path(tmp), 3 if args.quick else 7))
    result = {
        "benchmark": "backends",
        **figures,
        "pg_vs_sqlite_writes_1proc": round(figures["pg_writes_per_s_1proc"] / figures["sqlite_writes_per_s_1proc"], 2),
        "pg_vs_sqlite_writes_4proc": round(figures["pg_writes_per_s_4proc"] / figures["sqlite_writes_per_s_4proc"], 2),
        "pg_vs_sqlite_audit_verify": round(figures["pg_audit_verify_records_per_s"]
                                           / figures["sqlite_audit_verify_records_per_s"], 2),
        "s3_vs_local_checkpoint_restore": round(figures["s3_checkpoint_restore_s"]
                                                / figures["local_checkpoint_restore_s"], 2),
        "s3_vs_local_checkpoint_save": round(figures["s3_checkpoint_save_s"] / figures["local_checkpoint_save_s"], 2),
        "node_loss_next_step_s": None,
        "node_loss_lost_requests": None,
        "not_measured": "node loss: not built in this round (issue 16 item 4)",
        "writes": total * 2,
        "postgres": "15, throwaway cluster on loopback, fsync on (defaults)",
        "machine": machine(),
    }
    print(f"audited writes/s, SQLite vs Postgres: 1 process {figures['sqlite_writes_per_s_1proc']:.0f} vs "
          f"{figures['pg_writes_per_s_1proc']:.0f}; 4 processes {figures['sqlite_writes_per_s_4proc']:.0f} vs "
          f"{figures['pg_writes_per_s_4proc']:.0f}; verify {figures['sqlite_audit_verify_records_per_s']} vs "
          f"{figures['pg_audit_verify_records_per_s']} records/s")
    print(f"checkpoint ({figures['checkpoint_bytes']} bytes) local vs S3: save {figures['local_checkpoint_save_s']:.4f} "
          f"vs {figures['s3_checkpoint_save_s']:.4f} s; restore {figures['local_checkpoint_restore_s']:.4f} vs "
          f"{figures['s3_checkpoint_restore_s']:.4f} s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""The Ray layer: a TorchTrainer whose workers run `worker.Session` on Ray Data shards of a curated snapshot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmft.config.training import TrainingSpec
from llmft.train import checkpointing as ck


class RayRuntime:
    """Runtime backed by the Ray Train worker context and the process group it opened."""

    def __init__(self, config: dict) -> None:
        import ray.train
        import ray.train.torch

        ctx = ray.train.get_context()
        self.rank = ctx.get_world_rank()
        self.world_size = ctx.get_world_size()
        self.device = ray.train.torch.get_device()
        self.run_uri = config["run_uri"]

    def rows(self, split: str) -> list[dict]:
        import ray.train

        shard = ray.train.get_dataset_shard(split)
        if shard is None:
            return []
        return [dict(r) for r in shard.iter_rows()]

    def checkpoint_candidates(self) -> list[str]:
        """Every checkpoint of this run, newest first (Ray's latest included): the first passing its hash wins."""
        import ray.train

        on_disk = [uri for _, uri in ck.list_checkpoints(self.run_uri)]
        latest = ray.train.get_checkpoint()
        if latest is not None and not any(u.rstrip("/").endswith(Path(latest.path).name) for u in on_disk):
            remote = getattr(latest.filesystem, "type_name", "local") != "local"
            on_disk.insert(0, f"{latest.filesystem.type_name}://{latest.path}" if remote else latest.path)
        return on_disk

    def report(self, metrics: dict, checkpoint_dir: Path | None, name: str | None) -> None:
        import ray.train

        clean = {k: v for k, v in metrics.items() if v is not None}
        if checkpoint_dir is None:
            ray.train.report(clean)
        else:
            ray.train.report(clean, checkpoint=ray.train.Checkpoint.from_directory(str(checkpoint_dir)),
                             checkpoint_dir_name=name)

    def _tensor(self, values: list[float]) -> Any:
        import torch

        return torch.tensor(values, dtype=torch.float64, device=self.device)

    def all_reduce_sum(self, values: list[float]) -> list[float]:
        import torch.distributed as dist

        if self.world_size == 1:
            return list(values)
        t = self._tensor(values)
        dist.all_reduce(t)
        return t.cpu().tolist()

    def gather(self, obj: Any) -> list[Any]:
        import torch.distributed as dist

        if self.world_size == 1:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out


def train_loop_per_worker(config: dict) -> None:
    """Entry point of every Ray Train worker."""
    from llmft.train.outcome import write_outcome
    from llmft.train.worker import Session

    if config.get("storage_filesystem") is not None:  # object storage: the driver's filesystem, as Ray Train's
        from llmft import storage

        storage.use_filesystem(config["storage_filesystem"])
    rt = RayRuntime(config)
    tracker = recorder = None
    if rt.rank == 0:
        if config.get("mlflow"):
            from llmft.train.tracking import Tracker

            tracker = Tracker(config["mlflow"]["uri"], config["mlflow"]["run_id"])
        recorder = config.get("recorder")  # the job's recorder (picklable), handed down by the job model
    outcome = Session(config, rt, tracker, recorder).run()
    if rt.rank == 0:
        write_outcome(config["run_uri"], outcome)


def snapshot_datasets(snapshot_uri: str) -> dict:
    """Ray Data datasets of the train and validation splits of a curated snapshot's Parquet files.

    Materialised by the driver before the workers start: workers holding every CPU
    would otherwise leave no CPU for the read tasks (the pipeline stalls, backpressured).
    """
    import ray.data

    from llmft import storage

    ray.data.DataContext.get_current().enable_progress_bars = False
    if storage.is_remote(snapshot_uri):  # object storage: the cached copy, re-hashed, then into Ray's object store
        import pyarrow as pa
        import pyarrow.parquet as pq

        from llmft.manifest import verify_tree

        local, _ = storage.verified(snapshot_uri, verify_tree)
        ds = ray.data.from_arrow(pa.concat_tables([pq.read_table(p) for p in sorted(local.rglob("*.parquet"))]))
    else:
        ds = ray.data.read_parquet(snapshot_uri)
    ds = ds.select_columns(["id", "split", "prompt", "completion"])
    return {split: ds.filter(expr=f"split == '{split}'").materialize() for split in ("train", "validation")}


def run_name(spec: TrainingSpec) -> str:
    return f"{spec.tenant}.{spec.name}"


def build_trainer(spec: TrainingSpec, snapshot_uri: str, storage_path: str, extra: dict | None = None, *,
                  datasets: dict | None = None, callbacks: list | None = None) -> Any:
    """A TorchTrainer for the spec; `extra` adds the mlflow, recorder and debug sections to the worker config.

    `datasets` (already materialised splits) and `callbacks` let a sweep trial share one read of the
    snapshot and forward reports to Ray Tune.
    """
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from llmft import storage

    r = spec.resources
    run_uri = f"{storage_path.rstrip('/')}/{run_name(spec)}"
    config = {"spec": spec.model_dump(mode="json"), "run_uri": run_uri, **(extra or {})}
    fs = None
    if storage.is_remote(storage_path):  # Ray Train takes the filesystem and the path without its scheme
        fs, storage_path = storage.filesystem(storage_path)
        config["storage_filesystem"] = fs
    if config.get("recorder") is not None:  # a lost worker (or node) is on the job's record before the resume
        from llmft.train.lost_workers import LostWorkerEvents

        callbacks = [*(callbacks or []), LostWorkerEvents(config["recorder"])]
    env = {"OMP_NUM_THREADS": str(r.torch_threads), "TOKENIZERS_PARALLELISM": "false"}
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config=config,
        torch_config=TorchConfig(backend="nccl" if r.use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=r.num_workers, use_gpu=r.use_gpu,
                                     placement_strategy=r.placement_strategy,
                                     resources_per_worker={"CPU": r.cpus_per_worker, **({"GPU": 1} if r.use_gpu else {})}),
        run_config=RunConfig(name=run_name(spec), storage_path=storage_path, storage_filesystem=fs,
                             failure_config=FailureConfig(max_failures=spec.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=None),
                             worker_runtime_env={"env_vars": env}, callbacks=callbacks),
        datasets=datasets if datasets is not None else snapshot_datasets(snapshot_uri),
        dataset_config=DataConfig(datasets_to_split=[]),
    )


def fit(spec: TrainingSpec, snapshot_uri: str, storage_path: str, extra: dict | None = None) -> dict:
    """Run training to the end; returns rank 0's outcome (raises what Ray raised when the run failed)."""
    from llmft.train.outcome import clear_outcome, read_outcome

    run_uri = f"{storage_path.rstrip('/')}/{run_name(spec)}"
    clear_outcome(run_uri)
    trainer = build_trainer(spec, snapshot_uri, storage_path, extra)
    trainer.fit()
    outcome = read_outcome(run_uri)
    if outcome is None:
        raise RuntimeError("training finished without an outcome from rank 0")
    return outcome

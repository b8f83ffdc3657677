"""A training job's preflight: spec, base model, policy, strategy and privacy budget, checked before any worker starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmft.config.training import Method, TrainingSpec
from llmft.errors import NotFoundError, SpecError


@dataclass
class TrainingPlan:
    """Everything decided before a worker starts."""

    spec: TrainingSpec
    snapshot: Any
    snapshot_digest: str
    base_dir: Path
    base_params: int
    decisions: list = field(default_factory=list)
    storage_path: str = ""

    def summary(self) -> dict:
        s = self.spec
        return {"name": s.name, "tenant": s.tenant, "method": s.method.value,
                "strategy": s.distributed.strategy.value, "workers": s.resources.num_workers,
                "use_gpu": s.resources.use_gpu, "dataset": self.snapshot.id, "dataset_sha256": self.snapshot_digest,
                "classification": self.snapshot.classification, "base_model": str(self.base_dir),
                "base_params": self.base_params, "privacy": s.privacy.model_dump() if s.privacy.enabled else None,
                "policy": [d.__dict__ for d in self.decisions], "storage_path": self.storage_path}

    def schedule(self) -> dict:
        """The dry run's figures: steps, epochs, tokens and truncation, computed as the workers will."""
        from transformers import AutoTokenizer

        from llmft.train.data import BatchSchedule, tokenize_rows, total_steps
        from llmft.train.runtime import read_split

        s = self.spec
        tokenizer = AutoTokenizer.from_pretrained(str(self.base_dir))
        split = tokenize_rows(tokenizer, read_split(_snapshot_dir(self.snapshot.uri), "train"), s.data.max_seq_len,
                              s.data.truncation)
        workers = s.resources.num_workers
        batches = BatchSchedule(split.examples, s.optim.batch_size, workers, s.seed, s.data.packing,
                                s.data.max_seq_len, tokenizer.pad_token_id or 0)
        steps = total_steps(s, batches.batches_per_epoch, len(split.examples), workers)
        steps_per_epoch = max(1.0, batches.batches_per_epoch / s.optim.grad_accum)
        epoch_tokens = sum(len(ex.input_ids) for ex in split.examples)
        epochs = steps / steps_per_epoch
        return {"steps": steps, "epochs": round(epochs, 3), "steps_per_epoch": round(steps_per_epoch, 3),
                "examples": len(split.examples), "tokens_per_epoch": epoch_tokens,
                "tokens": int(epoch_tokens * epochs), "truncation": {"mode": s.data.truncation,
                                                                       "max_seq_len": s.data.max_seq_len,
                                                                       **split.to_dict()}}


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        return False


def _snapshot_digest(uri: str) -> str:
    from llmft import storage
    from llmft.manifest import MANIFEST_NAME, build_manifest, read_manifest, verify_tree

    if storage.is_remote(uri):  # object storage: the cached copy, re-hashed against its manifest
        return storage.verified(uri, verify_tree)[1].digest
    root = Path(uri)
    return read_manifest(root).digest if (root / MANIFEST_NAME).is_file() else build_manifest(root).digest


def _snapshot_dir(uri: str) -> Path:
    """A local directory with the snapshot's files (object storage: copied into the cache when absent)."""
    from llmft import storage

    try:
        return storage.fetch(uri)
    except NotFoundError:
        return storage.cache_path(uri)


def plan(spec: TrainingSpec, store: Any, storage_path: str | None = None) -> TrainingPlan:
    """Validate a spec against the store, the base model, the policy and the privacy budget; no side effects."""
    from llmft.models.loading import resolve_base
    from llmft.settings import Settings
    from llmft.train.methods import check_lora_modules, count_params, skeleton
    from llmft.train.policy import apply_policy
    from llmft.train.strategies import check_supported

    store.get_tenant(spec.tenant)
    try:
        snap = store.get_snapshot(spec.tenant, spec.dataset)
    except NotFoundError as exc:
        raise NotFoundError(f"dataset: {exc}") from None
    if snap.kind != "curated":
        raise SpecError(f"dataset: snapshot {snap.id} is a {snap.kind} snapshot; training needs a curated one")
    local = _snapshot_dir(snap.uri)
    if not local.is_dir() or not any(local.rglob("*.parquet")):
        raise NotFoundError(f"dataset: snapshot {snap.id} has no Parquet files at {snap.uri}")
    base_dir = resolve_base(spec.base_model)
    skel = skeleton(base_dir)
    params = count_params(skel)
    result = apply_policy(spec, params, snap.classification)
    spec = result.spec
    if spec.method in (Method.lora, Method.qlora):
        check_lora_modules(skel, spec.lora)
    check_supported(spec, _cuda())
    if spec.privacy.enabled:
        summary = store.privacy_summary(spec.tenant)
        existing = store.find_job(spec.tenant, "training", spec.name)
        if existing is None and spec.privacy.target_epsilon > summary.remaining + 1e-12:
            from llmft.errors import BudgetExceededError

            raise BudgetExceededError(
                f"privacy.target_epsilon={spec.privacy.target_epsilon:g} would exceed tenant {spec.tenant!r}'s "
                f"budget (remaining {summary.remaining:g} of {summary.budget:g})")
    settings = Settings.from_env()
    default = f"{settings.storage_uri}/train/{spec.tenant}" if settings.remote_storage else str(settings.storage / "train")
    where = storage_path or spec.checkpoint.storage_path or default
    return TrainingPlan(spec, snap, _snapshot_digest(snap.uri), base_dir, params, result.decisions, where)

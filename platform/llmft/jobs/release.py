"""From a training job to a registry version: the one path the CLI, the API and `register_as` share.

The job's output (its final checkpoint, or any checkpoint it recorded) becomes a self-contained
directory (weights + the base's tokenizer) with lineage drawn from the job record (base model,
snapshot chain, specs, seed, MLflow run), then an immutable version in the registry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmft import storage
from llmft.errors import NotFoundError
from llmft.jobs.job_run import job_dict


def find_training_job(store: Any, tenant: str, ref: str) -> Any:
    """A training job of this tenant by id or name; anything else is 404."""
    try:
        job = store.get_job(tenant, ref)
    except NotFoundError:
        job = store.find_job(tenant, "training", ref)
    if job is None or job.kind != "training":
        raise NotFoundError(f"training job {ref!r} not found for tenant {tenant!r}")
    return job


def job_of_checkpoint(store: Any, tenant: str, directory: Path) -> tuple[Any, Path | str]:
    """The training job that wrote `directory` (a checkpoint it recorded, or a folder inside one)."""
    target = Path(directory).resolve()
    for job in store.list_jobs(tenant, "training"):
        for ck in store.list_checkpoints(job.id):
            root = storage.cache_path(ck.uri).resolve()  # object storage: its local cache copy
            if target == root or root in target.parents:
                return job, (ck.uri if storage.is_remote(ck.uri) else root)
    raise NotFoundError(f"{Path(directory).name}: not a checkpoint any training job of tenant {tenant!r} recorded; "
                        f"register a job's output with --from-job, or pass --lineage FILE")


def register_job_output(registry: Any, tenant: str, model: str, *, actor: str, job_ref: str | None = None,
                        checkpoint_dir: Path | None = None, description: str = "", prerelease: str | None = None,
                        semver: str | None = None) -> Any:
    """Register a training job's final output (`job_ref`) or one of its checkpoints (`checkpoint_dir`)."""
    from llmft.train.release import release_dir

    store = registry.store
    if checkpoint_dir is not None:
        job, checkpoint = job_of_checkpoint(store, tenant, checkpoint_dir)
    else:
        job, checkpoint = find_training_job(store, tenant, job_ref or ""), None
    out = registry.settings.storage / "releases" / tenant / job.id / (str(checkpoint).rstrip("/").rsplit("/", 1)[-1] if checkpoint else "final")
    source, lineage = release_dir(job_dict(job), store, out, checkpoint=checkpoint)
    return registry.register(tenant, model, source, actor=actor, lineage=lineage, description=description,
                             prerelease=prerelease, semver=semver)

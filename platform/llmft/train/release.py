"""Turn a finished training job into what the registry takes: a directory + lineage inputs.

The directory holds the final adapter (or full weights) from the last checkpoint and the
base model's tokenizer files, so it loads on its own; lineage ties it to the base model,
the curated snapshot, the specs and the MLflow run.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from llmft.errors import ConflictError, IntegrityError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")


def release_dir(job: dict, store: Any, out_dir: Path, checkpoint: Path | str | None = None) -> tuple[Path, dict]:
    """(directory to register, lineage inputs) for a training job (`llmft.jobs.job_dict`).

    By default its final checkpoint (the job must have succeeded); `checkpoint` picks any checkpoint
    the job recorded (e.g. the best by validation loss), succeeded or not.
    """
    from llmft.manifest import verify_tree
    from llmft.models.loading import model_identity, resolve_base

    outcome = (job.get("result") or {}).get("outcome") or {}
    if checkpoint is None:
        if job["status"] != "succeeded":
            raise ConflictError(f"training job {job['name']!r} is {job['status']}: only a succeeded job can be "
                                f"released (or name one of its checkpoints)")
        checkpoint = outcome["checkpoint"]["uri"]
    from llmft import storage

    checkpoint_uri = str(checkpoint)  # object storage: copied into the local cache, then re-hashed
    checkpoint, _ = storage.verified(checkpoint_uri, lambda p: verify_tree(p, allow_extra=True))  # tampered: refused
    weights = next((checkpoint / d for d in ("adapter", "model") if (checkpoint / d).is_dir()), None)
    if weights is None:
        raise IntegrityError(f"{checkpoint}: no adapter/ or model/ directory")
    spec = job["result"].get("spec") or store.get_job(job["tenant"], job["id"]).spec
    base_dir = resolve_base(spec["base_model"])
    out_dir = Path(out_dir)
    shutil.rmtree(out_dir, ignore_errors=True)
    shutil.copytree(weights, out_dir)
    for name in TOKENIZER_FILES:
        if (base_dir / name).is_file():
            shutil.copy2(base_dir / name, out_dir / name)
    base = model_identity(base_dir, name=str(spec["base_model"]))
    snapshot = store.get_snapshot(job["tenant"], spec["dataset"])
    record = store.get_job(job["tenant"], job["id"])
    lineage = {
        "base_model": {"ref": str(spec["base_model"]), "name": base["name"], "sha256": base["sha256"]},
        "dataset_snapshot": snapshot.id, "dataset_digest": snapshot.id,
        "curation_spec_digest": snapshot.spec_digest, "training_spec": spec,
        "training_spec_digest": record.spec_digest, "method": spec["method"], "seed": spec["seed"],
        "metrics": {k: outcome.get(k) for k in ("val_loss", "best_val_loss", "steps", "tokens_per_s", "epsilon")
                    if outcome.get(k) is not None},
        "checkpoint": checkpoint_uri,
        "mlflow_run_id": job["result"].get("mlflow_run_id"), "job_id": job["id"],
        "duration_s": outcome.get("seconds"),
    }
    return out_dir, lineage

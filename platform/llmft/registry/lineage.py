"""Lineage records: everything needed to say exactly what produced a model version.

The training stage hands over plain inputs (base model identity, dataset snapshot,
specs, seed, metrics, run id); this module validates them and adds what the registry
knows (file manifest, environment, code commit, storage URIs) into one JSON record.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmft import environment
from llmft.errors import SpecError
from llmft.manifest import Manifest

SCHEMA = "llmft.lineage/v1"
SUMMARY_FILE = "training_summary.json"
_HEX64 = r"^[0-9a-f]{64}$"


class BaseModelInput(BaseModel):
    model_config = ConfigDict(extra="allow")
    ref: str = Field(description="How to load the base: a local directory or a built-in name such as `tiny`.")
    name: str = Field(description="The base model's name as recorded in its identity.")
    sha256: str = Field(pattern=_HEX64, description="Manifest digest of the base model's files.")


class LineageInputs(BaseModel):
    """What the training stage knows about a run; unknown keys are kept under `extra`."""

    model_config = ConfigDict(extra="allow")
    base_model: BaseModelInput = Field(description="Identity of the base model the run started from.")
    dataset_snapshot: str | None = Field(None, description="Snapshot id (or ref) of the training data.")
    dataset_digest: str | None = Field(None, description="Manifest digest of that snapshot.")
    curation_spec_digest: str | None = Field(None, description="Digest of the curation spec that produced it.")
    training_spec: dict = Field(default_factory=dict, description="The validated training spec (JSON form).")
    training_spec_digest: str | None = Field(None, description="Digest of the training spec.")
    method: str | None = Field(None, description="lora | qlora | full | prompt_tuning (default: from the spec).")
    seed: int | None = Field(None, description="Training seed.")
    metrics: dict = Field(default_factory=dict, description="Final metrics of the run.")
    mlflow_run_id: str | None = Field(None, description="The training run in MLflow.")
    job_id: str | None = Field(None, description="The training job in the store.")
    duration_s: float | None = Field(None, ge=0, description="Wall-clock training time.")
    code_commit: str | None = Field(None, description="Commit of the training code (default: this checkout).")
    hardware: dict | None = Field(None, description="Where training ran (default: this host).")
    libraries: dict | None = Field(None, description="Library versions of the training run (default: here).")


def parse_inputs(data: Any, source: str = "lineage inputs") -> LineageInputs:
    """Validate lineage inputs; errors name the dotted key."""
    if isinstance(data, LineageInputs):
        return data
    if not isinstance(data, dict):
        raise SpecError(f"{source}: expected a mapping, got {type(data).__name__}")
    if isinstance(data.get("lineage"), dict):  # a training summary that nests its lineage
        data = {**data["lineage"], **{k: v for k, v in data.items() if k in ("metrics", "duration_s")
                                       and k not in data["lineage"]}}
    try:
        return LineageInputs.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "<root>"
        raise SpecError(f"{source}: {key}: {first['msg']}") from None


def read_summary(source_dir: Path) -> dict:
    path = Path(source_dir) / SUMMARY_FILE
    if not path.is_file():
        raise SpecError(f"{source_dir}: no {SUMMARY_FILE}; pass the lineage inputs explicitly (--lineage FILE)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SpecError(f"{path}: not valid JSON (line {exc.lineno})") from None


def hardware() -> dict:
    return {**environment.hardware(), "recorded": "at registration"}


def artifact_kind(files: dict) -> str:
    """`adapter` (PEFT) or `full` (complete weights), from the file names alone."""
    if "adapter_config.json" in files:
        if not any(f.startswith("adapter_model.") for f in files):
            raise SpecError("adapter_config.json present but no adapter_model.safetensors/.bin beside it")
        return "adapter"
    if "config.json" in files and any(f.endswith((".safetensors", ".bin")) for f in files):
        return "full"
    raise SpecError("holds neither a PEFT adapter (adapter_config.json + adapter_model.*) "
                    "nor full weights (config.json + *.safetensors)")


def digest_of(data: dict) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def build_lineage(inputs: LineageInputs, *, tenant: str, name: str, manifest: Manifest, uri: str, actor: str,
                  snapshot: Any = None, ancestry: list[dict] | None = None) -> dict:
    """The version's lineage record (version and semver are filled in once allocated)."""
    spec = inputs.training_spec or {}
    known = set(LineageInputs.model_fields)
    return {
        "schema": SCHEMA,
        "model": {"tenant": tenant, "name": name, "version": None, "semver": None, "registered_by": actor,
                  "registered_at": datetime.now(timezone.utc).isoformat()},
        "base_model": inputs.base_model.model_dump(),
        "dataset": None if inputs.dataset_snapshot is None else {
            "snapshot_id": snapshot.id if snapshot is not None else inputs.dataset_snapshot,
            "ref": snapshot.ref if snapshot is not None else None,
            "digest": inputs.dataset_digest or (snapshot.id if snapshot is not None else None),
            "uri": snapshot.uri if snapshot is not None else None,
            "classification": snapshot.classification if snapshot is not None else None,
            "ancestry": ancestry or [],
        },
        "curation": {"spec_digest": inputs.curation_spec_digest or (snapshot.spec_digest if snapshot else None)},
        "training": {
            "method": inputs.method or spec.get("method"),
            "spec": spec,
            "spec_digest": inputs.training_spec_digest or (digest_of(spec) if spec else None),
            "seed": inputs.seed if inputs.seed is not None else spec.get("seed"),
            "job_id": inputs.job_id,
            "mlflow_run_id": inputs.mlflow_run_id,
            "duration_s": inputs.duration_s,
            "metrics": inputs.metrics,
        },
        "code": {"commit": inputs.code_commit or environment.git_commit()},
        "environment": {"libraries": inputs.libraries or environment.library_versions(), "hardware": inputs.hardware or hardware()},
        "artifacts": {"kind": artifact_kind(manifest.files), "manifest_digest": manifest.digest, "uri": uri,
                      "files": manifest.files, "bytes": sum(int(f["size"]) for f in manifest.files.values())},
        "evaluations": [],
        "approvals": [],
        "deployments": [],
        "lifecycle": [],
        "extra": {k: v for k, v in inputs.model_dump().items() if k not in known},
    }


def summary_tags(lineage: dict) -> dict[str, str]:
    """The lineage in a few MLflow tags (values are strings, capped)."""
    training, dataset = lineage["training"], lineage.get("dataset") or {}
    tags = {
        "llmft.tenant": lineage["model"]["tenant"],
        "llmft.semver": str(lineage["model"]["semver"]),
        "llmft.base_model": lineage["base_model"]["name"],
        "llmft.base_sha256": lineage["base_model"]["sha256"],
        "llmft.manifest_digest": lineage["artifacts"]["manifest_digest"],
        "llmft.artifact_kind": lineage["artifacts"]["kind"],
        "llmft.dataset_snapshot": str(dataset.get("snapshot_id")),
        "llmft.dataset_ref": str(dataset.get("ref")),
        "llmft.curation_spec_digest": str(lineage["curation"]["spec_digest"]),
        "llmft.training_spec_digest": str(training["spec_digest"]),
        "llmft.method": str(training["method"]),
        "llmft.seed": str(training["seed"]),
        "llmft.training_run": str(training["mlflow_run_id"]),
        "llmft.code_commit": lineage["code"]["commit"],
    }
    for key, value in sorted(training["metrics"].items())[:20]:
        tags[f"metric.{key}"] = str(value)
    return {k: v[:5000] for k, v in tags.items()}

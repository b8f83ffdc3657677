"""An evaluation as a store job: validating -> queued -> running -> succeeded | failed, plus result.json.

The CLI creates the job; under the control plane (LLMFT_JOB_ID set) the entrypoint reports on
the job it was given. A failing gate is a successful evaluation whose verdict is "blocked".
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llmft.errors import ConflictError, LlmftError


def summary(report: dict) -> dict:
    """What a job result and a CLI line need (the full report stays in its files)."""
    return {"passed": report["passed"], "reasons": report["reasons"], "figures": report["figures"],
            "candidate": report["candidate"].get("ref"), "base": report["base"].get("ref"),
            "prompts_per_s": report["throughput"]["prompts_per_s"], "files": report.get("files"),
            "attached": (report.get("attached") or {}).get("index")}


def _move(store: Any, job_id: str, status: str, actor: str, **kw: Any) -> None:
    try:
        store.transition_job(job_id, status, actor=actor, **kw)
    except ConflictError:
        pass  # the control plane moved it already


def run_job(spec: Any, *, spec_dir: str | Path | None, actor: str, registry: Any = None,
            out_dir: str | Path | None = None) -> dict:
    """Run `run_evaluation` under a store job; the job fails (with the error line) if it raises."""
    from llmft.evaluation.runner import run_evaluation
    from llmft.registry import ModelRegistry

    registry = registry or ModelRegistry()
    store = registry.store
    job_id = os.environ.get("LLMFT_JOB_ID")
    if not job_id:
        name = f"eval-{spec.model}-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S%f')}"
        job_id = store.create_job(tenant=spec.tenant, kind="evaluation", name=name,
                                  spec=json.loads(spec.model_dump_json()), actor=actor).id
        _move(store, job_id, "queued", actor)
    _move(store, job_id, "running", actor)
    try:
        report = run_evaluation(spec, registry=registry, spec_dir=spec_dir, out_dir=out_dir, actor=actor)
    except LlmftError as exc:
        _move(store, job_id, "failed", actor, error=str(exc))
        raise
    result = {**summary(report), "job_id": job_id}
    verdict = "passed its gates" if report["passed"] else "blocked: " + "; ".join(report["reasons"])
    _move(store, job_id, "succeeded", actor, message=verdict, result=result)
    job_dir = os.environ.get("LLMFT_JOB_DIR")
    if job_dir:
        Path(job_dir, "result.json").write_text(json.dumps(result, indent=2, default=str))
    return result

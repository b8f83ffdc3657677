"""Aliases and promotion: candidate / staging / production moved under the evaluation gates, audited.

Also what is attached to a version after registration: evaluation reports (their `passed`
decides whether a gated alias may point at the version) and deployment events. The alias
moves are the store's (one transaction, re-checked); MLflow's aliases follow them.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llmft import storage
from llmft.errors import ConflictError, NotFoundError, PermissionDeniedError, SpecError
from llmft.registry import lineage as lineage_mod

ALIASES = ("candidate", "staging", "production")
GATED = ("staging", "production")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


class PromotionMixin:
    """`ModelRegistry`'s alias moves and post-registration records (it supplies resolve, store, client)."""

    store: Any
    client: Any

    # -- aliases and promotion ----------------------------------------------------------------
    def promote(self, tenant: str, ref: str, alias: str, *, reason: str, actor: str) -> Any:
        """Point an alias at a version; staging/production need a passed evaluation (gates bind)."""
        if alias not in ALIASES:
            raise SpecError(f"alias {alias!r}: must be one of {', '.join(ALIASES)}")
        rec = self.resolve(tenant, ref)
        refusal = self._refusal(tenant, rec, alias)
        if refusal is not None:
            self.store.audit.append(actor, tenant, "model.promote.refused", f"model/{rec.ref}",
                                    {"alias": alias, "reason": refusal, "requested_because": reason})
            raise (PermissionDeniedError if "evaluation" in refusal else ConflictError)(
                f"cannot move {rec.name}@{alias} to {rec.ref}: {refusal}")
        current = self.store.current_aliases(tenant, rec.name).get(alias)
        if current == rec.version:
            raise ConflictError(f"{rec.name}@{alias} already points to {rec.ref}; nothing changed")

        def check(target: Any, _current: int | None) -> None:  # re-checked inside the transaction
            if target.status == "archived" or target.tainted:
                raise ConflictError(f"cannot move {rec.name}@{alias} to {rec.ref}: version is "
                                    f"{'archived' if target.status == 'archived' else 'tainted'}")

        def hook(_from: int | None, to: int | None) -> None:
            self.client.set_registered_model_alias(self.mlflow_name(tenant, rec.name), alias, str(to))

        move = self.store.move_alias(tenant, rec.name, alias, rec.version, actor=actor, reason=reason,
                                     check=check, hook=hook)
        if alias == "production":
            self.store.update_model_version(
                tenant, rec.name, rec.version, actor=actor, action="model.approve",
                payload={"alias": alias, "reason": reason},
                append=("approvals", {"alias": alias, "actor": actor, "reason": reason, "at": _now(),
                                      "from_version": move.from_version}))
        return move

    def _refusal(self, tenant: str, rec: Any, alias: str) -> str | None:
        if rec.status == "archived":
            return "version is archived"
        taint = self.taint_reason(tenant, rec)
        if taint:
            return f"version is tainted: {taint}"
        if alias in GATED:
            evals = rec.lineage.get("evaluations") or []
            if not evals:
                return "no evaluation report attached (gates decide staging/production)"
            if not evals[-1]["passed"]:
                return f"latest evaluation failed its gates: {'; '.join(evals[-1]['reasons']) or 'no reason given'}"
        return None

    def remove_alias(self, tenant: str, name: str, alias: str, *, reason: str, actor: str) -> Any:
        if self.store.current_aliases(tenant, name).get(alias) is None:
            raise NotFoundError(f"{name}@{alias}: alias not set")

        def hook(_from: int | None, _to: int | None) -> None:
            self.client.delete_registered_model_alias(self.mlflow_name(tenant, name), alias)

        return self.store.move_alias(tenant, name, alias, None, actor=actor, reason=reason, hook=hook)

    def alias_history(self, tenant: str, name: str, alias: str | None = None) -> list:
        self._require_model(tenant, name)
        return self.store.alias_history(tenant, name, alias)

    # -- evaluation reports -------------------------------------------------------------------
    def attach_eval_report(self, tenant: str, ref: str, report: dict, *, actor: str,
                           html_path: Path | str | None = None) -> dict:
        """Store an evaluation report (JSON, optional HTML) with the version; its `passed` gates promotion."""
        if not isinstance(report, dict) or not isinstance(report.get("passed"), bool):
            raise SpecError("evaluation report: 'passed' must be true or false")
        reasons = report.get("reasons", [])
        if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
            raise SpecError("evaluation report: 'reasons' must be a list of strings")
        if html_path is not None and not Path(html_path).is_file():
            raise NotFoundError(f"{html_path}: no such HTML report")
        rec = self.resolve(tenant, ref)
        index = len(rec.lineage.get("evaluations") or []) + 1
        body = json.dumps(report, indent=2, sort_keys=True, default=str)
        digest = lineage_mod.digest_of(json.loads(body))
        json_path = self._write_record(tenant, rec.name, rec.version, f"eval/{index}-report.json", body)
        html_dest = None
        if html_path is not None:
            html_dest = self._write_record(tenant, rec.name, rec.version, f"eval/{index}-report.html",
                                           Path(html_path).read_bytes())
        entry = {"index": index, "passed": report["passed"], "reasons": reasons, "digest": digest,
                 "uri": storage.uri_of(json_path), "html_uri": storage.uri_of(html_dest) if html_dest else None,
                 "actor": actor,
                 "at": _now()}
        self.store.update_model_version(tenant, rec.name, rec.version, actor=actor, action="model.eval.attach",
                                        payload={k: entry[k] for k in ("index", "passed", "reasons", "digest")},
                                        append=("evaluations", entry))
        mlname, run_id = self.mlflow_name(tenant, rec.name), rec.lineage["artifacts"].get("mlflow_run_id")
        if run_id:
            for path in filter(None, (json_path, html_dest)):
                self.client.log_artifact(run_id, str(path), artifact_path=f"registry/{rec.name}/{rec.version}/eval")
        self.client.set_model_version_tag(mlname, str(rec.version), "llmft.eval.passed", str(report["passed"]))
        self.client.set_model_version_tag(mlname, str(rec.version), "llmft.eval.digest", digest)
        return entry

    def record_deployment(self, tenant: str, ref: str, *, deployment: str, event: str, actor: str,
                          detail: dict | None = None) -> None:
        """Serving calls this so lineage reaches deployments (deployed, flipped, rolled back)."""
        rec = self.resolve(tenant, ref)
        entry = {"deployment": deployment, "event": event, "actor": actor, "at": _now(), **(detail or {})}
        self.store.update_model_version(tenant, rec.name, rec.version, actor=actor, action="model.deployment",
                                        payload=entry, append=("deployments", entry))

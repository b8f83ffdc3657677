"""Version lifecycle: deprecate, archive (files to cold storage), retention, and erasure taint.

A version trained on a snapshot that was superseded (erasure), directly or through any
ancestor, is tainted: it is flagged and can never be promoted again.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llmft.errors import ConflictError, NotFoundError
from llmft.manifest import Manifest
from llmft.registry import artifacts


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


class LifecycleMixin:
    store: Any
    settings: Any

    # -- taint --------------------------------------------------------------------------------
    def taint_reason(self, tenant: str, rec: Any) -> str | None:
        """Why a version is tainted (its data, or an ancestor of it, was superseded), else None."""
        if rec.dataset_snapshot is None:
            return "flagged as tainted" if rec.tainted else None
        seen: set[str] = set()
        frontier = [rec.dataset_snapshot]
        while frontier:
            snap_id = frontier.pop()
            if snap_id in seen:
                continue
            seen.add(snap_id)
            try:
                snap = self.store.get_snapshot(tenant, snap_id)
            except NotFoundError:
                return f"training snapshot {snap_id[:12]} is no longer recorded"
            if snap.superseded_by:
                by = snap.superseded_by
                try:
                    kind = self.store.get_snapshot(tenant, by).kind
                except NotFoundError:
                    kind = "unknown"
                return f"snapshot {snap.ref} ({snap.id[:12]}) was superseded by {kind} snapshot {by[:12]}"
            frontier.extend(snap.parents)
        return "flagged as tainted" if rec.tainted else None

    def refresh_taint(self, tenant: str, *, actor: str, name: str | None = None) -> list[dict]:
        """Flag every version whose training data is now superseded; call after an erasure."""
        flagged = []
        for rec in self.store.list_model_versions(tenant, name):
            reason = self.taint_reason(tenant, rec)
            if reason and not rec.tainted:
                self.store.update_model_version(tenant, rec.name, rec.version, actor=actor, action="model.taint",
                                                payload={"reason": reason}, tainted=True,
                                                append=("lifecycle", {"event": "tainted", "reason": reason,
                                                                      "actor": actor, "at": _now()}))
                flagged.append({"ref": rec.ref, "reason": reason})
        return flagged

    # -- deprecate and archive ----------------------------------------------------------------
    def deprecate(self, tenant: str, ref: str, *, reason: str, actor: str) -> Any:
        rec = self.resolve(tenant, ref)  # type: ignore[attr-defined]

        def check(current: Any) -> None:
            if current.status != "active":
                raise ConflictError(f"cannot deprecate {current.ref}: it is {current.status}")

        return self.store.update_model_version(
            tenant, rec.name, rec.version, actor=actor, action="model.deprecate", payload={"reason": reason},
            status="deprecated", check=check,
            append=("lifecycle", {"event": "deprecated", "reason": reason, "actor": actor, "at": _now()}))

    def cold_root(self, tenant: str) -> Path:
        base = os.environ.get("LLMFT_COLD_STORAGE")
        return (Path(base) if base else self.settings.storage / "cold") / "registry" / tenant / "objects"

    def archive(self, tenant: str, ref: str, *, reason: str, actor: str, cold: bool = True) -> Any:
        """Archive a version (never promotable again); its files move to cold storage unless shared."""
        rec = self.resolve(tenant, ref)  # type: ignore[attr-defined]
        if rec.status == "archived":
            raise ConflictError(f"{rec.ref} is already archived")
        held = sorted(a for a, v in self.store.current_aliases(tenant, rec.name).items() if v == rec.version)
        if held:
            raise ConflictError(f"cannot archive {rec.ref}: it is {', '.join(held)}; move the alias first")
        self.verify(tenant, rec.ref)  # type: ignore[attr-defined]  # never copy a tampered tree
        manifest = Manifest(rec.lineage["artifacts"]["files"])
        hot = Path(rec.uri)
        sharing = [v for v in self.store.list_model_versions(tenant) if v.uri == rec.uri and v.id != rec.id
                   and v.status != "archived"]
        new_uri = None
        if cold and not sharing and "://" not in rec.uri:  # object storage: tiering is the bucket's lifecycle rules
            new_uri = str(artifacts.relocate(hot, manifest, self.cold_root(tenant) / rec.manifest_digest))

        def check(current: Any) -> None:
            if current.status == "archived":
                raise ConflictError(f"{current.ref} is already archived")

        updated = self.store.update_model_version(
            tenant, rec.name, rec.version, actor=actor, action="model.archive",
            payload={"reason": reason, "uri": new_uri or rec.uri}, status="archived", uri=new_uri, check=check,
            append=("lifecycle", {"event": "archived", "reason": reason, "actor": actor, "at": _now(),
                                  "from_uri": rec.uri, "to_uri": new_uri or rec.uri}))
        if new_uri and hot != Path(new_uri):
            artifacts.remove_tree(hot)
        try:
            mlname = self.mlflow_name(tenant, rec.name)  # type: ignore[attr-defined]
            self.client.set_model_version_tag(mlname, str(rec.version), "llmft.status", "archived")  # type: ignore
            self.client.set_model_version_tag(mlname, str(rec.version), "llmft.uri", updated.uri)  # type: ignore
        except Exception:  # noqa: BLE001 - the store is the source of truth; tags are a UI mirror
            pass
        return updated

    def retention(self, tenant: str, name: str, *, keep_last: int, actor: str, dry_run: bool = False) -> dict:
        """Archive versions outside the policy: keep the last N, every version ever in production,
        and every version an alias points to now."""
        if keep_last < 1:
            raise ConflictError(f"retention keep_last={keep_last}: must be at least 1")
        versions = self._require_model(tenant, name)  # type: ignore[attr-defined]
        ever_production = {m.to_version for m in self.store.alias_history(tenant, name, "production")}
        aliased = set(self.store.current_aliases(tenant, name).values())
        newest = {v.version for v in versions[-keep_last:]}
        keep = newest | ever_production | aliased
        to_archive = [v for v in versions if v.version not in keep and v.status != "archived"]
        archived = []
        if not dry_run:
            for v in to_archive:
                self.archive(tenant, v.ref, reason=f"retention: keep last {keep_last} + production history",
                             actor=actor)
                archived.append(v.ref)
        return {"model": name, "keep_last": keep_last,
                "kept": [v.ref for v in versions if v.version in keep],
                "archive": [v.ref for v in to_archive], "archived": archived, "dry_run": dry_run}

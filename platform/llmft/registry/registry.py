"""The model registry: immutable, verified versions on MLflow's registry, mirrored in the store.

MLflow holds the registered model, its integer versions, tags and aliases (the UI); the
store holds the same versions and every alias move for the control plane and serving,
audited. Files live once per digest in a read-only, content-addressed directory. This module
registers and reads versions; promotion.py moves aliases, lifecycle.py retires versions.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from llmft import storage
from llmft.errors import ConflictError, IntegrityError, NotFoundError, SpecError
from llmft.manifest import Manifest
from llmft.registry import artifacts, lineage as lineage_mod
from llmft.registry.experiments import ensure_experiment, is_server
from llmft.registry.lifecycle import LifecycleMixin
from llmft.registry.promotion import ALIASES, GATED, PromotionMixin
from llmft.registry.semver import SemVer, next_semver

__all__ = ["ALIASES", "GATED", "ModelRegistry"]
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


class ModelRegistry(PromotionMixin, LifecycleMixin):
    """Register, resolve, verify and promote model versions of a tenant.

    Aliases, promotion and the records attached later (evaluations, deployments) are
    `PromotionMixin`'s; deprecation, archive, retention and taint `LifecycleMixin`'s.
    """

    def __init__(self, store: Any = None, settings: Any = None) -> None:
        from llmft.settings import Settings
        from llmft.store import Store

        self.settings = (settings or Settings.from_env()).ensure_dirs()
        self.store = store or Store(self.settings.db_url)
        self.root = self.settings.storage / "registry"
        self._client: Any = None

    # -- plumbing -----------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.settings.mlflow_uri)
        return self._client

    @staticmethod
    def mlflow_name(tenant: str, name: str) -> str:
        return f"{tenant}.{name}"

    def objects(self, tenant: str) -> Path:
        return self.root / tenant / "objects"

    def records_dir(self, tenant: str, name: str, version: int) -> Path:
        return self.root / tenant / "records" / name / str(version)

    def _write_record(self, tenant: str, name: str, version: int, rel: str, data: bytes | str) -> Path:
        """Write one record file (lineage, eval report) once; records are never rewritten."""
        path = self.records_dir(tenant, name, version) / rel
        if path.exists():
            raise ConflictError(f"{path}: already written; registry records are immutable")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        path.chmod(artifacts.READ_ONLY_FILE)
        storage.publish(path)  # object storage: the record lives in the bucket too
        return path

    def _run_for(self, tenant: str, name: str, training_run: str | None) -> str:
        """The training run when MLflow knows it, else a registry run that carries the artifacts."""
        if training_run:
            try:
                return self.client.get_run(training_run).info.run_id
            except Exception:  # noqa: BLE001 - a run id from another tracking server: keep it in lineage only
                pass
        exp_id = ensure_experiment(self.client, f"llmft/{tenant}/registry",
                                   self.settings.storage / "mlflow-artifacts" / tenant / "registry")
        run = self.client.create_run(exp_id, run_name=f"register {name}", tags={"llmft.tenant": tenant})
        self.client.set_terminated(run.info.run_id)
        return run.info.run_id

    def _mlflow_source(self, run_id: str, name: str, blob: Path, manifest: Manifest) -> str:
        """The model version's MLflow source: the object directory locally; the run's copy on a server.

        A tracking server refuses a local path as a source (it may not see the client's disk), so
        the files are first logged to the run through the server and registered as `runs:/...`.
        The platform's own object (`blob`, re-hashed by `verify`) stays what serving loads.
        """
        if not is_server(self.settings.mlflow_uri):
            return str(blob)
        path = f"registry/{name}/{manifest.digest[:16]}"
        self.client.log_artifacts(run_id, str(blob), artifact_path=path)
        return f"runs:/{run_id}/{path}"

    def _ensure_registered_model(self, tenant: str, name: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(self.mlflow_name(tenant, name))
        except MlflowException:
            try:
                self.client.create_registered_model(self.mlflow_name(tenant, name), tags={"llmft.tenant": tenant})
            except MlflowException:  # another process created it meanwhile (one server, many registrars)
                self.client.get_registered_model(self.mlflow_name(tenant, name))

    # -- register -----------------------------------------------------------------------------
    def register(self, tenant: str, name: str, source: Path | str, *, actor: str, lineage: Any = None,
                 prerelease: str | None = None, semver: str | None = None, description: str = "") -> Any:
        """A new version from a training output directory; identical bytes return the existing version."""
        started = time.perf_counter()
        if not _NAME.match(name or ""):
            raise SpecError(f"model name {name!r}: lowercase letters, digits, '.', '_' and '-' (max 63)")
        self.store.get_tenant(tenant)
        source = Path(source)
        if not source.is_dir():
            raise NotFoundError(f"{source}: no such directory to register")
        inputs = lineage_mod.parse_inputs(lineage if lineage is not None else lineage_mod.read_summary(source),
                                          f"lineage inputs for {name}")
        if semver is not None:
            SemVer.parse(semver)
        manifest = artifacts.manifest_of(source)
        try:
            lineage_mod.artifact_kind(manifest.files)
        except SpecError as exc:
            raise SpecError(f"{source}: {exc}") from None
        for rec in self.store.list_model_versions(tenant, name):
            if rec.manifest_digest == manifest.digest:
                return rec  # created False: identical bytes already registered
        snapshot, ancestry = self._snapshot_chain(tenant, inputs.dataset_snapshot)
        blob = artifacts.put(source, manifest, self.objects(tenant),
                             {"tenant": tenant, "name": name, "base_sha256": inputs.base_model.sha256})
        uri = storage.publish(blob)  # object storage: uploaded; its s3:// URI is the version's location
        record = lineage_mod.build_lineage(inputs, tenant=tenant, name=name, manifest=manifest, uri=uri,
                                           actor=actor, snapshot=snapshot, ancestry=ancestry)
        mlname = self.mlflow_name(tenant, name)
        created_mlflow: list[int] = []
        self._ensure_registered_model(tenant, name)

        def semver_for(previous: list) -> str:
            if semver is not None:
                return semver
            return next_semver([(p.semver, p.lineage) for p in previous], record, prerelease)

        def allocate(chosen: str) -> int:
            record["model"]["semver"] = chosen
            run_id = self._run_for(tenant, name, inputs.mlflow_run_id)
            mv = self.client.create_model_version(mlname, source=self._mlflow_source(run_id, name, blob, manifest),
                                                  run_id=run_id, tags=lineage_mod.summary_tags(record),
                                                  description=description)
            created_mlflow.append(int(mv.version))
            record["model"]["version"] = int(mv.version)
            record["artifacts"]["mlflow_run_id"] = run_id
            return int(mv.version)

        try:
            rec = self.store.add_model_version(
                tenant=tenant, name=name, manifest_digest=manifest.digest, uri=uri,
                base_model=inputs.base_model.ref, base_digest=inputs.base_model.sha256, lineage=record,
                actor=actor, semver_for=semver_for, allocate=allocate,
                dataset_snapshot=snapshot.id if snapshot is not None else inputs.dataset_snapshot,
                source_job_id=inputs.job_id)
        except BaseException:
            for version in created_mlflow:  # keep MLflow and the store in step
                self.client.delete_model_version(mlname, str(version))
            raise
        if rec.created:
            path = self._write_record(tenant, name, rec.version, "lineage.json",
                                      json.dumps(rec.lineage, indent=2, sort_keys=True, default=str))
            run_id = rec.lineage["artifacts"]["mlflow_run_id"]
            self.client.log_artifact(run_id, str(path), artifact_path=f"registry/{name}/{rec.version}")
            self.client.set_model_version_tag(mlname, str(rec.version), "llmft.lineage_uri", storage.uri_of(path))
            self.client.set_model_version_tag(mlname, str(rec.version), "llmft.register_seconds",
                                              f"{time.perf_counter() - started:.3f}")
        return rec

    def _snapshot_chain(self, tenant: str, snapshot_ref: str | None) -> tuple[Any, list[dict]]:
        """The training snapshot and its ancestors (raw first), as recorded in the store."""
        if snapshot_ref is None:
            return None, []
        snapshot = self.store.get_snapshot(tenant, snapshot_ref)
        chain, seen, frontier = [], set(), [snapshot.id]
        while frontier:
            current = self.store.get_snapshot(tenant, frontier.pop())
            if current.id in seen:
                continue
            seen.add(current.id)
            chain.append({"id": current.id, "ref": current.ref, "kind": current.kind, "uri": current.uri,
                          "parents": list(current.parents), "spec_digest": current.spec_digest,
                          "rows": current.row_count, "classification": current.classification})
            frontier.extend(current.parents)
        return snapshot, list(reversed(chain))

    # -- resolve ------------------------------------------------------------------------------
    def resolve(self, tenant: str, ref: str) -> Any:
        """`name` (newest), `name:N` (MLflow version), `name:1.3.0-rc.1` (semver) or `name@alias`."""
        name, at, alias = ref.partition("@")
        if at:
            if alias not in ALIASES:
                raise NotFoundError(f"{ref}: unknown alias {alias!r} (aliases: {', '.join(ALIASES)})")
            version = self.store.current_aliases(tenant, name).get(alias)
            if version is None:
                self._require_model(tenant, name)
                raise NotFoundError(f"{ref}: model {name!r} has no {alias!r} version")
            return self.store.get_model_version(tenant, name, version)
        name, colon, selector = ref.partition(":")
        versions = self._require_model(tenant, name)
        if not colon:
            return versions[-1]
        if selector.isdigit():
            return self.store.get_model_version(tenant, name, int(selector))
        match = [v for v in versions if v.semver == selector.removeprefix("v")]
        if not match:
            raise NotFoundError(f"model version {ref} not found for tenant {tenant!r}")
        return match[0]

    def _require_model(self, tenant: str, name: str) -> list:
        versions = self.store.list_model_versions(tenant, name)
        if not versions:
            raise NotFoundError(f"model {name!r} not found for tenant {tenant!r}")
        return versions

    def list_versions(self, tenant: str, name: str | None = None) -> list[dict]:
        out = []
        for rec in self.store.list_model_versions(tenant, name):
            aliases = self.store.current_aliases(tenant, rec.name)
            out.append(self._summary(rec, aliases))
        return out

    @staticmethod
    def _summary(rec: Any, aliases: dict[str, int]) -> dict:
        evals = rec.lineage.get("evaluations") or []
        return {"ref": rec.ref, "name": rec.name, "version": rec.version, "semver": rec.semver,
                "status": rec.status, "tainted": rec.tainted, "manifest_digest": rec.manifest_digest,
                "aliases": sorted(a for a, v in aliases.items() if v == rec.version),
                "base_model": rec.base_model, "dataset_snapshot": rec.dataset_snapshot,
                "eval_passed": evals[-1]["passed"] if evals else None, "uri": rec.uri,
                "created_by": rec.created_by, "created_at": rec.created_at.isoformat()}

    def show(self, tenant: str, ref: str) -> dict:
        rec = self.resolve(tenant, ref)
        return {**self._summary(rec, self.store.current_aliases(tenant, rec.name)),
                "taint_reason": self.taint_reason(tenant, rec), "lineage": rec.lineage}

    # -- verify and open ----------------------------------------------------------------------
    def verify_report(self, tenant: str, ref: str, refresh: bool = True) -> dict:
        """Re-hash every file of a version against the manifest recorded at registration.

        Object storage: the version's objects are copied from the bucket (`refresh`) or the local
        cache, and that copy is re-hashed; a problem names the object (its s3:// URI and file).
        """
        started = time.perf_counter()
        rec = self.resolve(tenant, ref)
        manifest = Manifest(rec.lineage["artifacts"]["files"])
        problems: list[tuple[str, str]] = []
        if manifest.digest != rec.manifest_digest:
            problems.append(("<recorded manifest>", "does not match the registered digest"))
        try:
            local = storage.fetch(rec.uri, refresh=refresh and storage.is_remote(rec.uri))
        except NotFoundError:
            local = storage.cache_path(rec.uri) / ".missing"
        problems += artifacts.changed_files(local, manifest)
        return {"ref": rec.ref, "semver": rec.semver, "uri": rec.uri, "ok": not problems,
                "files": len(manifest.files), "bytes": sum(int(f["size"]) for f in manifest.files.values()),
                "changed": [{"file": f, "problem": p} for f, p in problems],
                "seconds": round(time.perf_counter() - started, 4)}

    def verify(self, tenant: str, ref: str, refresh: bool = True) -> dict:
        """Like verify_report, but a changed file raises IntegrityError naming every such file."""
        report = self.verify_report(tenant, ref, refresh)
        if not report["ok"]:
            named = ", ".join(f"{c['file']} ({c['problem']})" for c in report["changed"])
            raise IntegrityError(f"model version {report['ref']} at {report['uri']}: {named}")
        return report

    def open(self, tenant: str, ref: str) -> tuple[Path, Any]:
        """The verified directory of a version, for loading; a tampered file raises IntegrityError."""
        rec = self.resolve(tenant, ref)
        self.verify(tenant, rec.ref, refresh=False)  # object storage: the cached copy (copied in when absent)
        return storage.fetch(rec.uri), rec

    # -- lineage ------------------------------------------------------------------------------
    def lineage(self, tenant: str, ref: str) -> dict:
        """The chain from raw snapshot to this version, its evaluations, alias moves and deployments."""
        rec = self.resolve(tenant, ref)
        lin = rec.lineage
        chain: list[dict] = []
        for snap in (lin.get("dataset") or {}).get("ancestry", []):
            current = self.store.get_snapshot(tenant, snap["id"])
            chain.append({"stage": f"snapshot:{snap['kind']}", "ref": snap["ref"], "id": snap["id"],
                          "uri": snap["uri"], "spec_digest": snap["spec_digest"],
                          "superseded_by": current.superseded_by})
        training = lin["training"]
        chain.append({"stage": "training", "job_id": training["job_id"], "mlflow_run_id": training["mlflow_run_id"],
                      "method": training["method"], "spec_digest": training["spec_digest"], "seed": training["seed"],
                      "duration_s": training["duration_s"], "metrics": training["metrics"],
                      "base_model": lin["base_model"], "code_commit": lin["code"]["commit"]})
        chain.append({"stage": "model_version", "ref": rec.ref, "semver": rec.semver, "status": rec.status,
                      "manifest_digest": rec.manifest_digest, "uri": rec.uri, "created_by": rec.created_by,
                      "created_at": rec.created_at.isoformat()})
        for ev in lin.get("evaluations", []):
            chain.append({"stage": "evaluation", **ev})
        for move in self.store.alias_history(tenant, rec.name):
            if rec.version in (move.from_version, move.to_version):
                chain.append({"stage": "alias", "alias": move.alias, "from": move.from_version,
                              "to": move.to_version, "actor": move.actor, "reason": move.reason,
                              "at": move.created_at.isoformat()})
        for dep in lin.get("deployments", []):
            chain.append({"stage": "deployment", **dep})
        return {"ref": rec.ref, "semver": rec.semver, "tainted": bool(self.taint_reason(tenant, rec)),
                "taint_reason": self.taint_reason(tenant, rec), "environment": lin["environment"], "chain": chain}

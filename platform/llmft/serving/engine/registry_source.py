"""Adapters served straight from the model registry: immutable, hash-recorded versions and aliases."""

from __future__ import annotations

from typing import Any

from llmft.errors import NotFoundError
from llmft.serving.engine.adapters import ResolvedAdapter


class RegistryAdapterSource:
    """`AdapterSource` over `llmft.registry.ModelRegistry`.

    A bare name resolves to the `production` alias when one is set, else the newest version.
    Archived versions are refused (their bytes may be in cold storage). The digest handed to
    the engine is the one recorded at registration, so a rewritten manifest is caught too.
    """

    def __init__(self, registry: Any = None):
        if registry is None:
            from llmft.registry import ModelRegistry

            registry = ModelRegistry()
        self.registry = registry

    def list(self, tenant: str) -> list[str]:
        try:
            versions = self.registry.store.list_model_versions(tenant)
        except NotFoundError:
            return []
        return sorted({v.name for v in versions if v.status != "archived"})

    def resolve(self, tenant: str, name: str, *, version: str | None = None,
                alias: str | None = None) -> ResolvedAdapter:
        if alias is not None:
            rec = self.registry.resolve(tenant, f"{name}@{alias}")
        elif version is not None:
            rec = self.registry.resolve(tenant, f"{name}:{version}")
        else:
            try:
                rec = self.registry.resolve(tenant, f"{name}@production")
            except NotFoundError:
                rec = self.registry.resolve(tenant, name)
        if rec.status == "archived":
            raise NotFoundError(f"model version {rec.ref} ({rec.semver}) is archived")
        from llmft import storage

        # object storage: copied into the local cache; the engine re-hashes it against the digest before loading
        return ResolvedAdapter(tenant, name, rec.semver, str(storage.fetch(rec.uri)), rec.manifest_digest,
                               rec.base_model,
                               meta={"registry_version": rec.version, "tainted": rec.tainted})

"""Where adapters come from (an `AdapterSource`) and which are resident (`AdapterCache`: the replica's one LRU).

The engine never trusts a path: every adapter is re-hashed against its manifest, and the
manifest's digest must equal the digest the source recorded, before its weights are loaded.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from llmft.errors import IntegrityError, LlmftError, NotFoundError, SpecError

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+-]{0,63}$")


def check_name(kind: str, value: str) -> str:
    if not NAME.match(value or ""):
        raise SpecError(f"{kind} {value!r}: use lowercase letters, digits, '.', '_' or '-' (max 63)")
    return value


@dataclass(frozen=True)
class ResolvedAdapter:
    """One immutable adapter version: `adapter_id` is `tenant/name:version`."""

    tenant: str
    name: str
    version: str
    path: str
    digest: str | None = None
    base_model: str | None = None
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def adapter_id(self) -> str:
        return f"{self.tenant}/{self.name}:{self.version}"

    @property
    def peft_name(self) -> str:
        """A PEFT-safe module key: ids hold '/', ':' and '.', which PEFT cannot take (nor dunders)."""
        return "lora_" + hashlib.sha256(self.adapter_id.encode()).hexdigest()[:16]


class AdapterSource(Protocol):
    """Resolves a tenant's adapter reference (`name`, `name@alias`, `name:version`) to a version."""

    def resolve(self, tenant: str, name: str, *, version: str | None = None,
                alias: str | None = None) -> ResolvedAdapter: ...

    def list(self, tenant: str) -> list[str]: ...


class DirectoryAdapterSource:
    """Adapters laid out as `root/<tenant>/<name>/<version>/` (with manifest.json) + `aliases.json`.

    The directory form a test or a single box needs; the registry-backed source has the same
    interface. `latest` is the highest version by natural sort.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def publish(self, tenant: str, name: str, version: str, src: str | Path, *,
                aliases: tuple[str, ...] = (), base_model: str | None = None) -> ResolvedAdapter:
        """Copy an adapter directory in as an immutable version and write its manifest."""
        import shutil

        from llmft.manifest import write_manifest

        check_name("tenant", tenant), check_name("adapter", name)
        target = self.root / tenant / name / version
        if target.exists():
            raise LlmftError(f"adapter {tenant}/{name}:{version} already exists (versions are immutable)")
        shutil.copytree(src, target)
        manifest = write_manifest(target, meta={"tenant": tenant, "name": name, "version": version,
                                                "base_model": base_model})
        for alias in aliases:
            self.set_alias(tenant, name, alias, version)
        return ResolvedAdapter(tenant, name, version, str(target), manifest.digest, base_model)

    def set_alias(self, tenant: str, name: str, alias: str, version: str) -> None:
        path = self.root / tenant / name / "aliases.json"
        data = json.loads(path.read_text()) if path.is_file() else {}
        data[check_name("alias", alias)] = version
        path.write_text(json.dumps(data, sort_keys=True))

    def list(self, tenant: str) -> list[str]:
        base = self.root / tenant
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []

    def resolve(self, tenant: str, name: str, *, version: str | None = None,
                alias: str | None = None) -> ResolvedAdapter:
        from llmft.manifest import read_manifest

        base = self.root / tenant / name
        if not base.is_dir():
            raise NotFoundError(f"adapter {name!r} not found for tenant {tenant!r}")
        if alias is not None:
            aliases_file = base / "aliases.json"
            aliases = json.loads(aliases_file.read_text()) if aliases_file.is_file() else {}
            if alias not in aliases:
                raise NotFoundError(f"adapter {name!r} has no alias {alias!r}")
            version = aliases[alias]
        if version is None:
            versions = sorted((p.name for p in base.iterdir() if p.is_dir()), key=_natural)
            if not versions:
                raise NotFoundError(f"adapter {name!r} has no versions")
            version = versions[-1]
        path = base / version
        if not path.is_dir():
            raise NotFoundError(f"adapter {name}:{version} not found for tenant {tenant!r}")
        manifest = read_manifest(path)
        return ResolvedAdapter(tenant, name, version, str(path), manifest.digest, manifest.meta.get("base_model"))


class NamedAdapterSource:
    """A fixed set of adapters under plain names, for one tenant (an in-process evaluation endpoint).

    Each name has exactly the version it was given; aliases do not exist here.
    """

    def __init__(self, tenant: str, adapters: dict[str, ResolvedAdapter]):
        self.tenant, self.adapters = tenant, dict(adapters)

    def list(self, tenant: str) -> list[str]:
        return list(self.adapters) if tenant == self.tenant else []

    def resolve(self, tenant: str, name: str, *, version: str | None = None,
                alias: str | None = None) -> ResolvedAdapter:
        adapter = self.adapters.get(name) if tenant == self.tenant else None
        if adapter is None or alias is not None or version not in (None, adapter.version):
            raise NotFoundError(f"adapter {name!r} not found for tenant {tenant!r}")
        return adapter


def _natural(text: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))


def verify_adapter(adapter: ResolvedAdapter) -> None:
    """Re-hash the adapter's files; the manifest must match the bytes and the recorded digest."""
    from llmft.manifest import verify_tree

    manifest = verify_tree(Path(adapter.path))
    if adapter.digest and manifest.digest != adapter.digest:
        raise IntegrityError(f"adapter {adapter.adapter_id}: manifest digest {manifest.digest[:12]} "
                             f"differs from the recorded {adapter.digest[:12]}")


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    load_ms: list[float] = field(default_factory=list)


class AdapterCache:
    """LRU of resident adapters, bounded by `capacity`; `load`/`unload` mutate the model.

    Callers hold the engine lock around `ensure`, so loads, evictions and generation never
    interleave. `pinned` ids (the current batch) are never evicted.
    """

    def __init__(self, capacity: int, load: Callable[[ResolvedAdapter], None],
                 unload: Callable[[ResolvedAdapter], None]):
        if capacity < 1:
            raise LlmftError(f"adapter cache capacity={capacity}: must be >= 1")
        self.capacity = capacity
        self._load, self._unload = load, unload
        self._resident: OrderedDict[str, ResolvedAdapter] = OrderedDict()
        self.stats = CacheStats()
        self._guard = threading.RLock()

    def __contains__(self, adapter_id: str) -> bool:
        return adapter_id in self._resident

    def resident(self) -> list[str]:
        """Resident adapter ids, least recently used first."""
        with self._guard:
            return list(self._resident)

    def ensure(self, adapter: ResolvedAdapter, pinned: frozenset[str] = frozenset()) -> bool:
        """Make `adapter` resident; True when it was already (a hit)."""
        with self._guard:
            if adapter.adapter_id in self._resident:
                self._resident.move_to_end(adapter.adapter_id)
                self.stats.hits += 1
                return True
            self.stats.misses += 1
            while len(self._resident) >= self.capacity:
                victim = next((k for k in self._resident if k not in pinned), None)
                if victim is None:
                    raise LlmftError(f"adapter cache full ({self.capacity}) with adapters the batch needs")
                self.evict(victim)
            started = time.perf_counter()
            verify_adapter(adapter)
            self._load(adapter)
            self._resident[adapter.adapter_id] = adapter
            self.stats.load_ms.append((time.perf_counter() - started) * 1000)
            return False

    def evict(self, adapter_id: str) -> bool:
        """Unload one adapter; idempotent (eviction callbacks may fire twice)."""
        with self._guard:
            adapter = self._resident.pop(adapter_id, None)
            if adapter is None:
                return False
            self._unload(adapter)
            self.stats.evictions += 1
            return True

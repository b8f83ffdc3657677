"""Which storage locations an API caller may name: its tenant's inbox, never `..`, never a symlink out.

The API never takes data in a request body; it takes a location. A location is accepted
only when it resolves (symlinks followed) inside one of the tenant's roots:
`<storage>/inbox/<tenant>` and any root listed in `LLMFT_API_SOURCE_ROOTS`
(os.pathsep-separated; `{tenant}` is replaced by the caller's tenant). Relative
locations are taken relative to the inbox.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from llmft.errors import PermissionDeniedError, SpecError


def tenant_roots(tenant: str, settings=None) -> list[Path]:  # noqa: ANN001
    """The tenant's roots (llmft.settings owns the rule, so the data stage checks the same ones)."""
    from llmft.settings import Settings

    return (settings or Settings.from_env()).tenant_roots(tenant)


def inbox(tenant: str) -> Path:
    """The tenant's drop directory (created on demand)."""
    root = tenant_roots(tenant)[0]
    root.mkdir(parents=True, exist_ok=True)
    return root


def check_location(tenant: str, location: str, field: str = "source") -> Path:
    """Resolve `location` for `tenant`, refusing anything outside its roots with a message naming `field`."""
    if not isinstance(location, str) or not location.strip():
        raise SpecError(f"{field}: must be a non-empty path")
    if "\x00" in location or any(ord(c) < 32 for c in location):
        raise SpecError(f"{field}: control characters are not allowed in a path")
    if "://" in location and not location.startswith("file://"):
        raise SpecError(f"{field}: only local paths under the tenant's storage are accepted over the API "
                        f"(got scheme {location.split('://', 1)[0]!r})")
    raw = location.removeprefix("file://")
    if ".." in PurePosixPath(raw.replace("\\", "/")).parts:
        raise PermissionDeniedError(f"{field}: '..' is not allowed in a storage path")
    roots = tenant_roots(tenant)
    candidate = Path(raw).expanduser()
    if not candidate.is_absolute():
        candidate = roots[0] / candidate
    resolved = candidate.resolve()
    for root in roots:
        if resolved == root or root in resolved.parents:
            return resolved
    raise PermissionDeniedError(f"{field}: {location!r} is outside tenant {tenant!r}'s storage "
                                f"(allowed under {', '.join(str(r) for r in roots)})")


# Storage locations inside each spec kind that a caller chooses: (dotted path, may be a bare name/ref).
SPEC_LOCATIONS = {
    "dataset": [("source", False)],
    "curation": [("tokenizer", True), ("replay.source", True)],
    "training": [("base_model", True), ("checkpoint.storage_path", False)],
    "sweep": [("training.base_model", True), ("training.checkpoint.storage_path", False)],
    "evaluation": [("base_model", True), ("suites[].path", False), ("suites[].json_schema", False)],
    "deployment": [("base_model", True)],
}


def _path_like(value: str) -> bool:
    return any(c in value for c in "/\\") or value.startswith((".", "~")) or "://" in value


def _slots(data: object, parts: list[str], prefix: str):  # noqa: ANN202
    """(dotted field, container, key) for every place `parts` names in `data` (`x[]` walks a list)."""
    head, rest = parts[0], parts[1:]
    key = head.removesuffix("[]")
    if not isinstance(data, dict) or data.get(key) is None:
        return
    if head.endswith("[]"):
        for i, item in enumerate(data[key] if isinstance(data[key], list) else []):
            if rest:
                yield from _slots(item, rest, f"{prefix}{key}[{i}].")
    elif rest:
        yield from _slots(data[key], rest, f"{prefix}{key}.")
    else:
        yield f"{prefix}{key}", data, key


def shared_model_roots() -> list[Path]:
    """Base models the platform provides to every tenant (read-only)."""
    from llmft.settings import Settings

    roots = [Settings.from_env().storage / "models"]
    roots += [Path(p) for p in filter(None, os.environ.get("LLMFT_API_SHARED_MODELS", "").split(os.pathsep))]
    return [r.expanduser().resolve() for r in roots]


def check_spec_locations(kind: str, tenant: str, data: dict) -> dict:
    """Refuse any caller-chosen location in a spec that escapes the tenant's storage; returns `data` with them resolved."""
    for dotted, may_be_ref in SPEC_LOCATIONS.get(kind, []):
        for field, container, key in list(_slots(data, dotted.split("."), "")):
            value = container[key]
            if not isinstance(value, str) or (may_be_ref and not _path_like(value)):
                continue
            if dotted.endswith("base_model") and ".." not in value:
                resolved = Path(value.removeprefix("file://")).expanduser().resolve()
                if any(resolved == r or r in resolved.parents for r in shared_model_roots()):
                    container[key] = str(resolved)
                    continue
            container[key] = str(check_location(tenant, value, field))
    return data

"""Last-resort scrubbing of error messages: no absolute server path leaves the API.

Sources should already name paths relative to the tenant's inbox; this catches the rest.
A path under a tenant's inbox becomes relative to it, other known roots (storage, LLMFT_HOME,
the install, the working directory, the user's home) become `<storage>`, `<home>`, ...
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

TENANT = r"[a-z0-9][a-z0-9._-]*"  # a tenant name (store.tenancy.TENANT_NAME without its anchors)


def _roots() -> list[tuple[str, str]]:
    from llmft.settings import Settings

    settings = Settings.from_env()
    named = [(settings.storage, "<storage>"), (settings.home, "<home>"),
             (Path(__file__).resolve().parents[1], "<llmft>"), (Path(sys.prefix), "<python>"),
             (Path(sys.base_prefix), "<python>"), (Path.cwd(), "<cwd>"), (Path.home(), "<user-home>")]
    named += [(Path(p), "<root>") for p in filter(None, os.environ.get("LLMFT_API_SOURCE_ROOTS", "").split(os.pathsep))
              if "{tenant}" not in p]
    out = {}
    for path, label in named:
        for variant in {str(path), os.path.realpath(path)}:
            if variant not in ("/", "/tmp", "/var", "/usr") and variant not in out:  # never a bare system root
                out[variant] = label
    if settings.remote_storage:  # the operator's bucket is not the caller's business either
        out[settings.storage_uri] = "<storage>"
    return sorted(out.items(), key=lambda kv: -len(kv[0]))


def scrub(message: str) -> str:
    """`message` with absolute server paths removed (tenant inbox paths made relative)."""
    if not isinstance(message, str) or "/" not in message:
        return message
    roots = _roots()
    tenant_roots = [re.escape(root + "/inbox/") + TENANT for root, label in roots if label == "<storage>"]
    tenant_roots += [re.escape(p).replace(re.escape("{tenant}"), TENANT)
                     for p in os.environ.get("LLMFT_API_SOURCE_ROOTS", "").split(os.pathsep) if "{tenant}" in p]
    for pattern in tenant_roots:  # inside a tenant's own roots: the path relative to them
        message = re.sub(pattern + "/", "", message)
        message = re.sub(pattern + r"(?=[\s'\",:)]|$)", "<inbox>", message)
    for root, label in roots:
        message = re.sub(re.escape(root) + r"(?=[/\s'\",:)]|$)", label, message)
    return message

"""Which hosts the platform may send prompts and credentials to: loopback, its own Serve app, the operator's list.

Evaluation sends private prompts (and a tenant's named secret, as a bearer key) to the
candidate, base and judge endpoints a spec names; a caller could name any host. So every
such URL must match the operator's allowlist: loopback and `LLMFT_SERVE_ADDRESS` by
default, plus `LLMFT_OUTBOUND_ALLOW` (comma list of `host[:port]` patterns, `*` wildcards,
e.g. `judge.internal:8000,*.models.corp`). Hosts are matched as written, never resolved.
"""

from __future__ import annotations

import ipaddress
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

LOOPBACK_NAMES = ("localhost",)


def _settings():  # noqa: ANN202
    from llmft.settings import Settings

    return Settings.from_env()


def _split(pattern: str) -> tuple[str, str]:
    """`host[:port]` (IPv6 in brackets) -> (host, port or '*')."""
    pattern = pattern.strip().lower()
    if pattern.startswith("["):
        host, _, rest = pattern[1:].partition("]")
        return host, rest.lstrip(":") or "*"
    host, sep, port = pattern.rpartition(":")
    if sep and (port.isdigit() or port == "*") and ":" not in host:
        return host, port
    return pattern, "*"


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allowed_patterns() -> list[str]:
    s = _settings()
    return ["loopback", s.serve_address, *s.outbound_allow]


def check_url(url: str) -> str:
    """`url` when the operator allows sending to it, else ValueError saying what is allowed."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ValueError("not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("credentials in the URL are not accepted; name a secret with api_key_secret")
    host = parts.hostname.lower()
    port = str(port or (443 if parts.scheme == "https" else 80))
    if is_loopback(host):
        return url
    s = _settings()
    for pattern in (s.serve_address, *s.outbound_allow):
        p_host, p_port = _split(pattern)
        if fnmatchcase(host, p_host) and p_port in ("*", port):
            return url
    raise ValueError(f"host {host}:{port} is not an allowed outbound endpoint (allowed: "
                     f"{', '.join(allowed_patterns())}); an operator adds hosts with LLMFT_OUTBOUND_ALLOW")

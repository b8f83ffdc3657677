"""Named secrets the operator configured per tenant; a spec names one (`api_key_secret`), never an env var.

An environment variable name in a spec would let a caller pick any of the platform's own
secrets (`LLMFT_DB_URL`) and send it to a host of its choosing. Secrets live in the file
`LLMFT_SECRETS_FILE` (YAML or JSON): `{tenant: {secret name: value}}`; a tenant sees only
its own names. Job processes for a tenant need at most that tenant's entries.
"""

from __future__ import annotations

from typing import Any

from llmft.errors import SpecError

SECRET_NAME = r"^[a-z0-9][a-z0-9._-]{0,62}$"


def _table() -> dict[str, Any]:
    from llmft.settings import Settings

    path = Settings.from_env().secrets_file
    if path is None or not path.is_file():
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        raise SpecError("the operator's secrets file (LLMFT_SECRETS_FILE) is unreadable or malformed") from None
    return data if isinstance(data, dict) else {}


def names(tenant: str) -> list[str]:
    """The secret names configured for `tenant` (never the values)."""
    entry = _table().get(tenant)
    return sorted(str(k) for k in entry) if isinstance(entry, dict) else []


def resolve(tenant: str, name: str, field: str = "api_key_secret") -> str:
    """The value of `tenant`'s secret `name`; SpecError naming the field and the tenant's names otherwise."""
    entry = _table().get(tenant)
    value = entry.get(name) if isinstance(entry, dict) else None
    if not isinstance(value, str) or not value:
        configured = ", ".join(names(tenant)) or "none"
        raise SpecError(f"{field}: no secret {name!r} is configured for tenant {tenant!r} "
                        f"(configured: {configured}); an operator adds it to LLMFT_SECRETS_FILE")
    return value


# The platform's own object-storage credentials: the operator's environment, never a request or a spec.
STORAGE_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
STORAGE_SETTINGS_ENV = ("LLMFT_S3_ENDPOINT", "LLMFT_S3_REGION", "LLMFT_STORAGE_CACHE")


def storage_credentials() -> dict[str, str]:
    """{access_key, secret_key[, session_token]} for the platform's object storage, or {} (the SDK's chain)."""
    import os

    key, secret, token = (os.environ.get(v, "") for v in STORAGE_ENV)
    if not (key and secret):
        return {}
    return {"access_key": key, "secret_key": secret, **({"session_token": token} if token else {})}


def storage_env() -> dict[str, str]:
    """What a job process needs to reach the platform's object storage (only when LLMFT_STORAGE is one)."""
    import os

    return {k: os.environ[k] for k in (*STORAGE_ENV, *STORAGE_SETTINGS_ENV) if os.environ.get(k)}

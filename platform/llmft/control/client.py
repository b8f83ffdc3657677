"""Thin HTTP client of the control plane (what the CLI uses when `LLMFT_API_URL` is set).

Errors come back as the same llmft error types the library raises, with the server's message.
Every POST carries a fresh Idempotency-Key, so the one retry after a dropped connection or a
503 can never apply a change twice.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from llmft.errors import ConflictError, LlmftError, NotFoundError, PermissionDeniedError, SpecError

SEGMENTS = {"curation": "curation-jobs", "training": "training-jobs", "sweep": "sweeps", "evaluation": "evaluations"}
_ERRORS = {401: PermissionDeniedError, 403: PermissionDeniedError, 404: NotFoundError, 409: ConflictError,
           413: SpecError, 422: SpecError}


class ApiClient:
    def __init__(self, base_url: str, api_key: str | None, *, timeout: float = 30.0, transport: Any = None):
        import httpx

        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout, transport=transport)

    @classmethod
    def from_env(cls) -> "ApiClient":
        url = os.environ.get("LLMFT_API_URL")
        if not url:
            raise LlmftError("LLMFT_API_URL is not set")
        return cls(url, os.environ.get("LLMFT_API_KEY"))

    def request(self, method: str, path: str, *, json: Any = None, params: dict | None = None) -> Any:
        import httpx

        headers = {"Idempotency-Key": uuid.uuid4().hex} if method == "POST" else {}
        params = {k: v for k, v in (params or {}).items() if v is not None}
        for attempt in (1, 2):
            try:
                r = self.http.request(method, f"/v1{path}", json=json, params=params, headers=headers)
            except httpx.TransportError as exc:
                if attempt == 2:
                    raise LlmftError(f"control plane at {self.base_url} unreachable: {exc}") from None
                continue
            if r.status_code == 503 and attempt == 1:
                continue
            break
        if r.status_code >= 400:
            try:
                message = r.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = r.text[:300] or r.reason_phrase
            if r.status_code == 429:
                message += f" (retry after {r.headers.get('Retry-After', '?')} s)"
            raise _ERRORS.get(r.status_code, LlmftError)(message)
        return r.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body if body is not None else {})

    def all(self, path: str, **params: Any) -> list:
        """Every item of a paginated list."""
        out, after = [], None
        while True:
            page = self.get(path, limit=100, after=after, **params)
            out += page["data"]
            if not page.get("has_more") or not page["data"]:
                return out
            last = page["data"][-1]
            after = last.get("id", last.get("ref"))

    # -- jobs (one shape for every kind) --
    def job_path(self, tenant: str, kind: str, job: str | None = None) -> str:
        base = f"/tenants/{tenant}/{SEGMENTS[kind]}"
        return f"{base}/{job}" if job else base

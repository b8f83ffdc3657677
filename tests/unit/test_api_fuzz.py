"""Property-style fuzz over every route of the control plane's OpenAPI schema (issue 12).

For each route a seeded random generator builds a bounded number of hostile requests: malformed
bodies, wrong types, oversized strings, non-finite numbers as raw JSON tokens (1e999, NaN,
Infinity), deep nesting, integers beyond 64 bits in bodies and query parameters, long and
odd path components. Properties: no response is a 5xx, every error has the API's one error
shape, and a refused request changes nothing (table digests, audit chain, stored files).
The seed is fixed (override with LLMFT_FUZZ_SEED) so a failure replays exactly.
"""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path
from typing import Any

from tests.control_fixtures import training_spec

SEED = int(os.environ.get("LLMFT_FUZZ_SEED", "20261130"))
CASES_PER_ROUTE = int(os.environ.get("LLMFT_FUZZ_CASES", "10"))

# Raw JSON fragments that json.dumps cannot produce: a fuzzed field may hold any of them verbatim.
RAW_VALUES = [b"1e999", b"-1e999", b"NaN", b"Infinity", b"-Infinity", b"9" * 40, b"-" + b"9" * 25,
              b"1" * 5000, b"[" * 70 + b"]" * 70, b"null", b"true", b'"\\u0000"', b'"\\ud800"', b"{}", b"[]"]


def _resolve(schema: dict, spec: dict) -> dict:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    if "anyOf" in schema:  # Optional[X]: the non-null branch
        schema = next((s for s in schema["anyOf"] if s.get("type") != "null"), schema["anyOf"][0])
        return _resolve(schema, spec)
    return schema


def _valid(schema: dict, spec: dict, rng: random.Random) -> Any:
    """A plausible value for `schema` (the fuzz mutates one part of it)."""
    schema = _resolve(schema, spec)
    if "enum" in schema:
        return rng.choice(schema["enum"])
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties") or {}
        if not props:
            return {**training_spec(f"fz-{rng.randrange(10**6)}"), "source": "in.jsonl", "output": "out"}
        return {name: _valid(sub, spec, rng) for name, sub in props.items()}
    if kind == "integer":
        return rng.randrange(1, 10)
    if kind == "number":
        return rng.choice([0.5, 1.0, 4.0])
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "array":
        return [_valid(schema.get("items") or {}, spec, rng)]
    return rng.choice(["abc", "x1", "1", "candidate", "tickets.jsonl", "reason"])


def _hostile(rng: random.Random) -> Any:
    """A value of the wrong type, size or shape (encodable by json.dumps)."""
    choices = [
        lambda: "A" * rng.choice([129, 4097, 20_000]),
        lambda: rng.choice([-1, 0, 2**63, -(2**63) - 1, 2**70]),
        lambda: rng.choice([[], [1, "x"], {}, {"a": {"b": None}}, None, True, 3.5]),
        lambda: "".join(chr(rng.choice([0, 7, 0x202E, 0xFEFF, 0x10FFFF, ord("/"), ord(".")])) for _ in range(8)),
        lambda: "../" * rng.randrange(1, 30) + "etc/passwd",
        lambda: _nest(rng.choice([40, 63, 65, 200, 600])),
        lambda: "/" + "x" * 300,
    ]
    return rng.choice(choices)()


def _nest(levels: int) -> Any:
    node: Any = 1
    for _ in range(levels):
        node = [node]
    return node


_MARK = "__RAW_TOKEN__"


def _body(route: dict, spec: dict, rng: random.Random) -> tuple[bytes, str]:
    """(raw body bytes, what it is) for one case."""
    schema = route.get("body")
    roll = rng.random()
    if roll < 0.12:
        return rng.choice([b'{"a": ', b"\xff\xfe", b"", b"[1, 2", b'{"a": 1}}', b"nul"]), "malformed"
    if roll < 0.2 or schema is None:
        return json.dumps(_hostile(rng)).encode(), "wrong top-level type"
    body = _valid(schema, spec, rng)
    if not isinstance(body, dict) or not body:
        return json.dumps(body).encode(), "valid-ish"
    key = rng.choice(sorted(body) + ["spec", "unknown_field"])
    target = body
    if key == "spec" and isinstance(body.get("spec"), dict) and rng.random() < 0.7:  # mutate inside the spec
        target = body["spec"]
        key = rng.choice(sorted(target) + ["lora", "optim", "checkpoint", "filters"])
    if rng.random() < 0.35:
        token = rng.choice(RAW_VALUES)
        target[key] = _MARK
        return json.dumps(body).encode().replace(f'"{_MARK}"'.encode(), token), f"{key}={token[:12]!r}"
    target[key] = _hostile(rng)
    return json.dumps(body).encode(), f"{key}=hostile"


def _path(route: dict, rng: random.Random) -> tuple[str, str]:
    path, what = route["path"], "plain"
    for name in re.findall(r"\{([^}]+)\}", path):
        if name == "tenant":
            value = route["tenant"]
        elif rng.random() < 0.25:
            value, what = rng.choice(["p" * 129, "q" * 300, "r" * 4000]), f"long {name}"
        elif rng.random() < 0.25:
            value, what = rng.choice(["%00", "..%2F..%2Fetc", "%E2%80%AE", "x%20y", "%25", "a:b:c", "-1"]), f"odd {name}"
        else:
            value = rng.choice(["x1", "1", "latest", "abc"])
        path = path.replace("{" + name + "}", value)
    return path, what


def _query(route: dict, rng: random.Random) -> str:
    parts = []
    for name, kind in route["query"]:
        if rng.random() < 0.5:
            continue
        if kind == "integer":
            value = rng.choice([str(2**70), str(-(2**63) - 1), "1e3", "NaN", "-5", "0", "9" * 50, "1"])
        else:
            value = rng.choice(["x" * 300, "%00", "after", ""])
        parts.append(f"{name}={value}")
    return "&".join(parts)


def _routes(api) -> list[dict]:  # noqa: ANN001
    spec = api.client.get("/openapi.json").json()
    out = []
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            body = (((op.get("requestBody") or {}).get("content") or {}).get("application/json") or {}).get("schema")
            query = [(p["name"], _resolve(p.get("schema") or {}, spec).get("type"))
                     for p in op.get("parameters") or [] if p["in"] == "query"]
            tenant = "acme" if "{tenant}" in path else "platform"
            out.append({"path": path, "method": method.upper(), "body": body, "query": query, "tenant": tenant})
    return spec, out


def _settle(api) -> None:  # noqa: ANN001
    """Let in-process jobs started by an accepted request finish, so later digests are stable."""
    for thread in list(getattr(api.runner, "_threads", {}).values()):
        thread.join(10)


def test_no_route_answers_5xx_or_changes_state_when_it_refuses(api):
    from llmft.control.denials import Denials

    api.client.app.state.control.denials = Denials(api.store, per_minute=10**6)  # every refusal on record
    spec, routes = _routes(api)
    assert len(routes) >= 40, [r["path"] for r in routes]
    rng = random.Random(SEED)
    server_paths = {str(api.home), str(api.home.resolve()), str(Path(__file__).resolve().parents[2])}
    failures, seen = [], 0
    before = api.state()
    for route in routes:
        for case in range(CASES_PER_ROUTE):
            path, path_kind = _path(route, rng)
            query = _query(route, rng)
            url = path + (f"?{query}" if query else "")
            who = rng.random()  # mostly the tenant's admin (reaches the handlers); sometimes a weaker or foreign key
            headers = api.h(rng.choice(["viewer", "developer"]), route["tenant"]) if who < 0.1 else \
                api.h("admin", "globex") if who < 0.15 else api.h("admin", route["tenant"])
            if route["method"] in ("POST", "PUT", "PATCH"):
                raw, body_kind = _body(route, spec, rng)
                if rng.random() < 0.2:
                    headers["Idempotency-Key"] = f"fz-{case}"
                r = api.client.request(route["method"], url, content=raw,
                                       headers={**headers, "content-type": "application/json"})
            else:
                raw, body_kind = b"", "-"
                r = api.client.request(route["method"], url, headers=headers)
            seen += 1
            where = f"{route['method']} {url[:120]} [{path_kind}; {body_kind}; body {raw[:80]!r}]"
            if r.status_code >= 500:
                failures.append(f"{r.status_code} {where}: {r.text[:200]}")
                continue
            if r.status_code >= 400:
                error = r.json().get("error") if r.headers.get("content-type", "").startswith("application/json") else None
                if not (isinstance(error, dict) and {"type", "message"} <= set(error)):
                    failures.append(f"{r.status_code} not in the error shape: {where}: {r.text[:200]}")
                elif any(root in error["message"] for root in server_paths):
                    failures.append(f"{r.status_code} names a server path: {where}: {error['message'][:200]}")
                now = api.state()
                if now != before:
                    changed = [k for k in now if now[k] != before[k]]
                    failures.append(f"{r.status_code} refused but changed {changed}: {where}")
                    before = now
            else:
                _settle(api)
                before = api.state()
    assert seen >= 40 * CASES_PER_ROUTE
    assert not failures, "\n".join(failures)

"""Pluggable callables (toxicity scorers, ...) looked up by NAME in a registry the operator controls.

A spec never names code: it names a plugin, and the plugin's code comes from
  1. Python entry points installed with the platform (or with an operator's package),
     one group per kind (`llmft.toxicity_scorers`), and
  2. the operator's settings: `LLMFT_PLUGINS="toxicity_scorers.strict=acme_policy.scorers:strict"`.
Anything else is refused at spec validation, listing the allowed names. An operator's own
spec run from the CLI may name `module:callable` only when `LLMFT_ALLOW_CALLABLE_SPECS=1`;
a spec that came through the API never may (validated with origin "api").
"""

from __future__ import annotations

import re
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Callable

from llmft.errors import SpecError

# spec field kind -> entry-point group
GROUPS = {"toxicity_scorer": "llmft.toxicity_scorers"}
CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def _settings() -> Any:
    from llmft.settings import Settings

    return Settings.from_env()


def registered(kind: str) -> dict[str, str]:
    """name -> `module:callable` for every plugin of `kind`: installed entry points, then the operator's list."""
    group = GROUPS[kind]
    out = {ep.name: ep.value for ep in entry_points(group=group)}
    for item in _settings().plugins:
        key, _, target = item.partition("=")
        prefix, _, name = key.strip().rpartition(".")
        if prefix in (group, group.removeprefix("llmft.")) and name and CALLABLE.match(target.strip()):
            out[name] = target.strip()
    return out


def _callable_allowed(origin: str | None) -> bool:
    return origin != "api" and _settings().allow_callable_specs


def check(kind: str, value: Any, origin: str | None = None) -> str:
    """`value` when a spec may name it, else ValueError listing the registered names (the schema's refusal)."""
    names = registered(kind)
    if isinstance(value, str) and value in names:
        return value
    if isinstance(value, str) and CALLABLE.match(value) and _callable_allowed(origin):
        return value
    label = kind.replace("_", " ")
    why = ("code cannot be named in a spec; " if isinstance(value, str) and ":" in value else "")
    raise ValueError(f"{why}{value!r} is not a registered {label}; allowed: {', '.join(sorted(names)) or '(none)'} "
                     f"(an operator registers more as entry points in group {GROUPS[kind]!r} or in LLMFT_PLUGINS)")


def load(kind: str, name: str, field: str | None = None) -> Callable[..., Any]:
    """The callable a (validated) spec names; checked again here, since a job may read a spec from a file."""
    try:
        check(kind, name)
    except ValueError as exc:
        raise SpecError(f"{field or kind}: {exc}") from None
    target = registered(kind).get(name, name)
    return EntryPoint(name=name, value=target, group=GROUPS[kind]).load()

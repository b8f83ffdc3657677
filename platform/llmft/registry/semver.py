"""Semantic versions for model versions, derived from what changed in their lineage.

Base model changed -> major; new data (snapshot, curation) or method -> minor; anything
else (training config, metadata) -> patch. Candidates get a pre-release (`1.3.0-rc.1`)
that does not move the release line, so the release that follows is `1.3.0`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from llmft.errors import SpecError

_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$")
FIRST = (1, 0, 0)
CHANGES = ("major", "minor", "patch")


@dataclass(frozen=True)
class SemVer:
    major: int
    minor: int
    patch: int
    pre: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> "SemVer":
        match = _SEMVER.match(text or "")
        if not match:
            raise SpecError(f"semantic version {text!r}: expected MAJOR.MINOR.PATCH[-PRERELEASE], e.g. 1.3.0-rc.1")
        pre = tuple(match.group(4).split(".")) if match.group(4) else ()
        return cls(int(match.group(1)), int(match.group(2)), int(match.group(3)), pre)

    @property
    def core(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    @property
    def is_release(self) -> bool:
        return not self.pre

    def sort_key(self) -> tuple:
        """SemVer 2.0 precedence: a pre-release sorts before its release; numeric ids before alphanumeric."""
        pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.pre)
        return (self.core, 0 if self.pre else 1, pre)

    def __str__(self) -> str:
        core = f"{self.major}.{self.minor}.{self.patch}"
        return f"{core}-{'.'.join(self.pre)}" if self.pre else core


def classify_change(previous: dict | None, new: dict) -> str:
    """`major`, `minor` or `patch`: what differs between two lineage records."""
    if previous is None:
        return "major"

    def pick(lineage: dict, *path: str) -> object:
        node: object = lineage
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        return node

    if pick(previous, "base_model", "sha256") != pick(new, "base_model", "sha256"):
        return "major"
    for path in (("dataset", "snapshot_id"), ("dataset", "digest"), ("curation", "spec_digest"),
                 ("training", "method")):
        if pick(previous, *path) != pick(new, *path):
            return "minor"
    return "patch"


def bump(version: tuple[int, int, int] | None, change: str) -> tuple[int, int, int]:
    if change not in CHANGES:
        raise SpecError(f"change {change!r}: must be one of {', '.join(CHANGES)}")
    if version is None:
        return FIRST
    major, minor, patch = version
    if change == "major":
        return (major + 1, 0, 0)
    if change == "minor":
        return (major, minor + 1, 0)
    return (major, minor, patch + 1)


def latest_release(semvers: Iterable[str]) -> SemVer | None:
    releases = [v for v in map(SemVer.parse, semvers) if v.is_release]
    return max(releases, key=SemVer.sort_key, default=None)


def next_semver(previous: list[tuple[str, dict]], new_lineage: dict, prerelease: str | None = None) -> str:
    """The next version given (semver, lineage) of earlier versions, compared with the newest release.

    With `prerelease="rc"` the result is `<next core>-rc.N`, N one more than the highest
    existing pre-release of that core with the same label.
    """
    release = latest_release(v for v, _ in previous)
    base_lineage = next((lin for v, lin in previous if release and SemVer.parse(v) == release), None)
    change = classify_change(base_lineage, new_lineage) if release else "major"
    core = bump(release.core if release else None, change)
    if not prerelease:
        return "%d.%d.%d" % core
    if not re.match(r"^[A-Za-z][0-9A-Za-z-]*$", prerelease):
        raise SpecError(f"pre-release label {prerelease!r}: letters, digits and '-', starting with a letter")
    taken = [SemVer.parse(v) for v, _ in previous]
    numbers = [int(v.pre[1]) for v in taken if v.core == core and len(v.pre) == 2 and v.pre[0] == prerelease
               and v.pre[1].isdigit()]
    return "%d.%d.%d-%s.%d" % (*core, prerelease, max(numbers, default=0) + 1)

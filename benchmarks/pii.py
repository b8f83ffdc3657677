"""PII detection quality and speed: precision and recall per type on the labelled snippets, findings on real
technical text, and throughput.

    python benchmarks/pii.py [--docs 20000]

labelled   tests/fixtures/pii_labelled.jsonl: technical and personal snippets, each labelled with the PII
           it holds (or none); scored with the default exemptions and with none (`not_pii=()`, the
           detector without its technical-text rules) side by side.
stdlib     docstrings of this Python's standard library: technical text with (almost) no personal
           data, so every finding is a candidate false positive; the first few per type are printed
           for review. Throughput (MB/s, one process) is measured on the same text.
The last line is JSON: {"labelled": {type: {precision, recall}}, "technical_precision", ...}.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import sysconfig
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "platform"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from llmft.data import pii  # noqa: E402

LABELLED = ROOT / "tests" / "fixtures" / "pii_labelled.jsonl"


def stdlib_docstrings(limit: int) -> list[str]:
    """Docstrings of the standard library's modules, classes and functions (sorted files, deterministic)."""
    out: list[str] = []
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        if "site-packages" in path.parts or "test" in path.parts:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 40:
                    out.append(doc)
                    if len(out) >= limit:
                        return out
    return out


def previous_detector():
    """The detector as last committed (`git show HEAD:...`), for a side-by-side figure; None without git."""
    import subprocess
    import types

    try:
        src = subprocess.run(["git", "show", "HEAD:platform/llmft/data/pii.py"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    mod = types.ModuleType("pii_previous")
    sys.modules[mod.__name__] = mod  # its dataclasses look their module up
    exec(compile(src, "pii_previous.py", "exec"), mod.__dict__)  # noqa: S102 - the repo's own committed source
    return mod


def score_previous(mod, snippets: list[dict]) -> dict:
    """Per-type precision/recall of an older detector (its own `detect(text)`), scored like `pii.measure`."""
    real_detect = pii.detect
    pii.detect = lambda text, types=pii.ALL_TYPES, not_pii=(): mod.detect(text, types)
    try:
        return pii.measure(snippets)
    finally:
        pii.detect = real_detect


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=20000, help="stdlib docstrings to scan")
    args = ap.parse_args()
    snippets = pii.load_labelled(LABELLED)
    ours = pii.measure(snippets)
    bare = pii.measure(snippets, not_pii=())
    prev_mod = previous_detector()
    prev = score_previous(prev_mod, snippets) if prev_mod else None
    print(f"labelled: {len(snippets)} snippets ({sum(s['kind'] == 'technical' for s in snippets)} technical), "
          f"{sum(len(s['pii']) for s in snippets)} labelled values")
    print(f"{'type':8} {'precision':>9} {'recall':>7}   without exemptions: {'precision':>9} {'recall':>7}")
    for t in pii.ALL_TYPES:
        a, b = ours["per_type"][t], bare["per_type"][t]
        print(f"{t:8} {a['precision']:9.3f} {a['recall']:7.3f}   {'':20}{b['precision']:9.3f} {b['recall']:7.3f}")
    if prev:
        print("committed detector (HEAD): " + ", ".join(
            f"{t} {prev['per_type'][t]['precision']:.3f}/{prev['per_type'][t]['recall']:.3f}" for t in pii.ALL_TYPES)
            + f"; technical precision {prev['technical_precision']:.3f} ({prev['technical_findings']} findings)")
    print(f"technical snippets: precision {ours['technical_precision']:.3f} ({ours['technical_findings']} findings); "
          f"without exemptions {bare['technical_precision']:.3f} ({bare['technical_findings']} findings)")

    docs = stdlib_docstrings(args.docs)
    mb = sum(len(d.encode()) for d in docs) / 1e6
    started = time.perf_counter()
    found = [(d, f) for d in docs for f in pii.detect(d)]
    seconds = time.perf_counter() - started
    bare_found = Counter(f.type for d in docs for f in pii.detect(d, not_pii=()))
    started = time.perf_counter()
    prev_found = Counter(f.type for d in docs for f in prev_mod.detect(d)) if prev_mod else None
    prev_seconds = time.perf_counter() - started
    by_type = Counter(f.type for _, f in found)
    print(f"stdlib docstrings: {len(docs)} ({mb:.1f} MB), findings {dict(by_type)} "
          f"(without exemptions {dict(bare_found)}; committed detector {dict(prev_found or {})}); "
          f"{mb / seconds:.2f} MB/s (committed detector {mb / prev_seconds:.2f} MB/s, same run)")
    shown = Counter()
    for d, f in found:
        if shown[f.type] < 5:
            shown[f.type] += 1
            print(f"  {f.type:7} {d[max(0, f.start - 30):f.end + 30]!r}")
    from machine import machine

    print(json.dumps({"labelled": {t: {k: ours["per_type"][t][k] for k in ("precision", "recall")}
                                   for t in pii.ALL_TYPES},
                      "technical_precision": ours["technical_precision"], "overall": ours["overall"],
                      "without_exemptions": {t: {k: bare["per_type"][t][k] for k in ("precision", "recall")}
                                             for t in pii.ALL_TYPES},
                      "committed_detector": ({t: {k: prev["per_type"][t][k] for k in ("precision", "recall")}
                                              for t in pii.ALL_TYPES} | {"technical_precision":
                                                                         prev["technical_precision"]}
                                             if prev else None),
                      "snippets": len(snippets),
                      "stdlib_docstrings": {"docs": len(docs), "mb": round(mb, 2), "findings": dict(by_type),
                                            "findings_without_exemptions": dict(bare_found),
                                            "findings_committed_detector": dict(prev_found or {})},
                      "mb_per_s": round(mb / seconds, 3),
                      "mb_per_s_committed_detector": round(mb / prev_seconds, 3) if prev_mod else None,
                      "machine": machine()}))


if __name__ == "__main__":
    main()

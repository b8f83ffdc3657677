"""The curation report: per-step counts as JSON and a small HTML page, written next to the snapshot.

It counts PII findings by type and drops by reason with their locations, and
shows a few redacted examples per type (the redacted text around the placeholder,
the original value masked: `call me at <PHONE>` / `+1 415 *** **12`), so a user
sees what changed without a diff; it never contains a whole PII value.
"""

from __future__ import annotations

import html
import json
from pathlib import Path


def build(*, source: dict, tally: dict, dedupe: dict, splits: dict, replay: dict, output_rows: int,
          spec_digest: str, params: dict) -> dict:
    status = dict(tally["status"])
    ok = status.pop("ok", 0)
    read_bad = {k: v for k, v in status.items() if k.startswith(("malformed", "invalid_utf8", "not_an_object",
                                                                   "empty_file", "row_too_large", "unreadable",
                                                                   "refused", "missing_field", "wrong_type",
                                                                   "ambiguous_format", "unknown_format"))}
    pii_drop = status.pop("pii_drop", 0)
    filtered = {k: v for k, v in status.items() if k not in read_bad}
    total = ok + pii_drop + sum(status.values())
    steps = [
        {"step": "read", "in": total, "out": total - sum(read_bad.values()), "dropped": read_bad},
        {"step": "pii", "in": total - sum(read_bad.values()), "out": total - sum(read_bad.values()) - pii_drop,
         "dropped": {"pii_drop": pii_drop} if pii_drop else {}, "findings": dict(sorted(tally["pii"].items()))},
        {"step": "quality", "in": total - sum(read_bad.values()) - pii_drop, "out": ok, "dropped": filtered},
        {"step": "dedupe", "in": ok, "out": ok - dedupe.get("exact_removed", 0) - dedupe.get("near_removed", 0),
         "dropped": {"exact_duplicate": dedupe.get("exact_removed", 0),
                     "near_duplicate": dedupe.get("near_removed", 0)}},
        {"step": "format+split", "in": output_rows - replay.get("rows", 0), "out": output_rows - replay.get("rows", 0),
         "splits": splits},
        {"step": "replay", "in": replay.get("available", 0), "out": replay.get("rows", 0), "dropped": {}},
    ]
    return {"source": source, "spec_digest": spec_digest, "steps": steps, "bad_rows": tally["where"],
            "pii_findings": dict(sorted(tally["pii"].items())), "pii_examples": tally.get("pii_examples", {}),
            "dedupe": dedupe, "splits": splits,
            "replay": replay, "output_rows": output_rows, "params": params}


def files(report: dict) -> dict[str, bytes]:
    """The report's files (name -> bytes): report.json and report.html, stored beside the snapshot's data."""
    return {"report.json": json.dumps(report, indent=2, sort_keys=True, default=str).encode(),
            "report.html": render_html(report).encode()}


def write(report: dict, directory: Path) -> None:
    for name, data in files(report).items():
        (Path(directory) / name).write_bytes(data)


def render_html(report: dict) -> str:
    e = html.escape
    rows = []
    for s in report["steps"]:
        dropped = ", ".join(f"{e(str(k))}: {v}" for k, v in (s.get("dropped") or {}).items() if v) or "-"
        rows.append(f"<tr><td>{e(s['step'])}</td><td>{s['in']}</td><td>{s['out']}</td><td>{dropped}</td></tr>")
    pii_rows = "".join(f"<tr><td>{e(k)}</td><td>{v}</td></tr>" for k, v in report["pii_findings"].items())
    examples = "".join(f"<tr><td>{e(t)}</td><td>{e(str(x['file']))}:{x['line']} {e(str(x.get('field', '')))}</td>"
                       f"<td><code>{e(x['redacted'])}</code></td><td><code>{e(x['masked'])}</code></td></tr>"
                       for t, xs in report.get("pii_examples", {}).items() for x in xs)
    d = report["dedupe"]
    pairs = "".join(f"<li>{e(p['a'])} ~ {e(p['b'])} (J&asymp;{p['estimated_jaccard']})</li>"
                    for p in d.get("sample_pairs", []))
    src = report["source"]
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Curation report</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}</style>
</head><body><h1>Curation report</h1>
<p>Source {e(str(src.get('dataset')))} v{e(str(src.get('version')))} ({e(str(src.get('id', ''))[:12])}),
spec {e(report['spec_digest'][:12])}, {report['output_rows']} output rows.</p>
<h2>Steps</h2><table><tr><th>step</th><th>in</th><th>out</th><th>dropped (reason: rows)</th></tr>{''.join(rows)}</table>
<h2>PII findings (by type; values are never shown whole)</h2><table><tr><th>type</th><th>count</th></tr>{pii_rows}</table>
<h3>Examples (first per type; the text as redacted, the original masked)</h3>
<table><tr><th>type</th><th>where</th><th>redacted</th><th>original (masked)</th></tr>{examples}</table>
<h2>Dedupe</h2><p>{d.get('clusters', 0)} clusters (largest {d.get('largest_cluster', 0)}),
{d.get('exact_removed', 0)} exact and {d.get('near_removed', 0)} near duplicates removed,
bands {d.get('bands')} x rows {d.get('rows_per_band')}.</p><ul>{pairs}</ul>
<h2>Splits</h2><p>{e(json.dumps(report['splits']))}; replay {e(json.dumps(report['replay']))}</p>
</body></html>
"""

"""The evaluation report: a JSON document (what the registry stores) and a self-contained HTML page.

Plots are matplotlib PNGs embedded as base64, so the page is one file that opens anywhere,
attached to the model version next to the JSON.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

# per-kind metrics plotted side by side (base vs candidate)
PLOTTED = {"golden": ("rouge_l", "exact_match", "json_valid_rate", "toxicity_rate"),
           "regression": ("rouge_l", "exact_match"), "safety": ("toxicity_rate",),
           "memorization": ("extraction_rate", "secret_prefix_share_max")}


def _png(fig) -> str:  # noqa: ANN001
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def plot_metrics(report: dict) -> str:
    """Grouped bars: every plotted metric of every suite, base vs candidate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, base, cand = [], [], []
    for name, s in report["suites"].items():
        for key in PLOTTED.get(s["kind"], ()):
            if s["candidate"].get(key) is not None and s["base"].get(key) is not None:
                labels.append(f"{name}\n{key}")
                base.append(s["base"][key])
                cand.append(s["candidate"][key])
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(labels)), 3.4))
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], base, 0.4, label=report["base"]["label"], color="#9aa5b1")
    ax.bar([x + 0.2 for x in xs], cand, 0.4, label=report["candidate"]["label"], color="#2f6fdf")
    ax.set_xticks(list(xs), labels, fontsize=7, rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    ax.set_title("Per-suite metrics: base vs candidate", fontsize=10)
    data = _png(fig)
    plt.close(fig)
    return data


def plot_wins(report: dict) -> str:
    """Stacked win / tie / loss bar per judged suite."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    judged = {n: s["judge"] for n, s in report["suites"].items() if s.get("judge")}
    fig, ax = plt.subplots(figsize=(6, 0.6 + 0.5 * max(1, len(judged))))
    left = [0.0] * len(judged)
    for outcome, colour in (("win", "#2e9e5b"), ("tie", "#c9c9c9"), ("loss", "#d64545")):
        vals = [j[outcome] / j["n"] if j["n"] else 0 for j in judged.values()]
        ax.barh(list(judged), vals, left=left, color=colour, label=outcome)
        left = [a + b for a, b in zip(left, vals)]
    ax.set_xlim(0, 1)
    ax.axvline(report["gates"]["thresholds"]["win_rate_vs_base_min"], color="black", ls="--", lw=1)
    ax.legend(fontsize=8, ncol=3, loc="lower right")
    ax.set_title("Pairwise verdicts (candidate vs base)", fontsize=10)
    data = _png(fig)
    plt.close(fig)
    return data


def plot_training_curve(curve: dict[str, list[list]]) -> str | None:
    """The candidate's train / validation loss by step (None when the version has no recorded run)."""
    if not curve:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for key, points in curve.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], label=key, marker="o" if key == "val_loss" else None)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title("Candidate training loss", fontsize=10)
    data = _png(fig)
    plt.close(fig)
    return data


def plot_confusion(report: dict, min_classes: int = 3) -> list[tuple[str, str]]:
    """(title, png) per categorical JSON field with `min_classes`+ values: base and candidate side by side,
    rows the reference value, columns the answered one (`(invalid)` for no parseable value)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    for name, s in report["suites"].items():
        cand = s["candidate"].get("field_confusion") or {}
        for field, matrix in cand.items():
            if len(matrix) < min_classes:
                continue
            sides = [(report["base"]["label"], (s["base"].get("field_confusion") or {}).get(field) or {}),
                     (report["candidate"]["label"], matrix)]
            truth = sorted(matrix)
            answered = truth + sorted({p for _, m in sides for row in m.values() for p in row} - set(truth))
            fig, axes = plt.subplots(1, 2, figsize=(3.2 + 1.1 * len(answered), 0.8 + 0.45 * len(truth)))
            for ax, (label, m) in zip(axes, sides):
                grid = [[m.get(t, {}).get(p, 0) for p in answered] for t in truth]
                ax.imshow(grid, cmap="Blues")
                for i, row in enumerate(grid):
                    for j, v in enumerate(row):
                        if v:
                            ax.text(j, i, str(v), ha="center", va="center", fontsize=7)
                ax.set_xticks(range(len(answered)), answered, rotation=40, ha="right", fontsize=7)
                ax.set_yticks(range(len(truth)), truth, fontsize=7)
                ax.set_xlabel("answered", fontsize=8)
                ax.set_title(label, fontsize=9)
            axes[0].set_ylabel("reference", fontsize=8)
            fig.suptitle(f"{name}: {field}", fontsize=10)
            out.append((f"{name}: {field}", _png(fig)))
            plt.close(fig)
    return out


def _fmt(v: object) -> str:
    return f"{v:.3f}" if isinstance(v, float) else html.escape(str(v))


def render_html(report: dict) -> str:
    esc = html.escape
    verdict = "PASSED" if report["passed"] else "BLOCKED"
    colour = "#2e9e5b" if report["passed"] else "#d64545"
    gate_rows = "".join(
        f"<tr class='{c['status']}'><td>{esc(c['name'])}</td><td>{_fmt(c['value']) if c['value'] is not None else '-'}"
        f"</td><td>{c['op']} {_fmt(c['threshold']) if c['threshold'] is not None else '-'}</td><td>{c['status']}"
        f"</td><td>{esc(c['detail'])}</td></tr>"
        for c in report["gates"]["checks"])
    field_rows = "".join(
        f"<tr><td>{esc(name)}</td><td>{esc(field)}</td><td>{_fmt(s['base'].get('field_accuracy', {}).get(field))}</td>"
        f"<td><b>{_fmt(acc)}</b></td></tr>"
        for name, s in report["suites"].items() for field, acc in (s["candidate"].get("field_accuracy") or {}).items())
    field_table = (f"<h2>Accuracy per JSON field</h2><table><tr><th>suite</th><th>field</th><th>base</th>"
                   f"<th>candidate</th></tr>{field_rows}</table>" if field_rows else "")
    suite_rows = []
    for name, s in report["suites"].items():
        keys = [k for k in s["candidate"] if isinstance(s["candidate"][k], (int, float)) and k != "prompts"]
        cells = "".join(f"<li>{esc(k)}: {_fmt(s['base'].get(k))} &rarr; <b>{_fmt(s['candidate'][k])}</b></li>"
                        for k in keys)
        suite_rows.append(f"<tr><td>{esc(name)}</td><td>{s['kind']}</td><td>{s['prompts']}</td><td><ul>{cells}</ul>"
                          f"</td></tr>")
    examples = []
    for name, s in report["suites"].items():
        for ex in s.get("examples", [])[:3]:
            examples.append(f"<tr><td>{esc(name)}</td><td><pre>{esc(ex['prompt'][:300])}</pre></td><td><pre>"
                            f"{esc(ex['base'][:300])}</pre></td><td><pre>{esc(ex['candidate'][:300])}</pre></td></tr>")
    confusion = "".join(f'<img alt="confusion {esc(title)}" src="data:image/png;base64,{png}">'
                        for title, png in plot_confusion(report))
    if confusion:
        field_table += f"<h2>Confusion matrices</h2>{confusion}"
    curve = plot_training_curve(report.get("training_curve") or {})
    curve_html = f'<h2>Training</h2><img alt="training loss" src="data:image/png;base64,{curve}">' if curve else ""
    tp = report["throughput"]
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>llmft eval {esc(report['candidate']['label'])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top;font-size:13px}} tr.failed{{background:#fde8e8}}
tr.skipped,tr.off{{color:#888}} pre{{white-space:pre-wrap;margin:0;font-size:12px}} .v{{color:{colour};font-weight:bold}}</style>
</head><body><h1>Evaluation: {esc(report['candidate']['label'])} vs {esc(report['base']['label'])}</h1>
<p class="v">{verdict}</p><p>tenant {esc(report['tenant'])} &middot; judge {esc(report['judge']['type'])} &middot;
{report['prompts']} prompts per side &middot; {tp['prompts_per_s']:.2f} prompts/s &middot; {esc(report['finished_at'])}</p>
<h2>Gates</h2><table><tr><th>gate</th><th>value</th><th>threshold</th><th>status</th><th>detail</th></tr>{gate_rows}</table>
{field_table}<h2>Metrics</h2><img alt="metrics" src="data:image/png;base64,{plot_metrics(report)}">
<img alt="verdicts" src="data:image/png;base64,{plot_wins(report)}">
<table><tr><th>suite</th><th>kind</th><th>prompts</th><th>base &rarr; candidate</th></tr>{''.join(suite_rows)}</table>
{curve_html}<h2>Examples</h2><table><tr><th>suite</th><th>prompt</th><th>base</th><th>candidate</th></tr>{''.join(examples)}</table>
<h2>Raw</h2><pre>{esc(json.dumps({k: report[k] for k in ('candidate', 'base', 'throughput', 'spec_digest')}, indent=1))}</pre>
</body></html>"""


def write_report(report: dict, out_dir: str | Path) -> tuple[Path, Path]:
    """`report.json` and `report.html` under `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / "report.json", out / "report.html"
    json_path.write_text(json.dumps(report, indent=2, sort_keys=True, default=str))
    html_path.write_text(render_html(report), encoding="utf-8")
    return json_path, html_path

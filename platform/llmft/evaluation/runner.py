"""Run an evaluation: resolve candidate and base, serve them (or use given endpoints), run every suite
through HTTP on both sides at once, judge, apply the gates, write the report and attach it.

Also ranks a list of checkpoint directories on the same suites (base answers computed once), so
the best checkpoint, not merely the last, is the one registered.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llmft import credentials, storage
from llmft.errors import ConflictError, SpecError
from llmft.evaluation.client import EndpointClient, GenerationRun, run_sync
from llmft.evaluation.gates import evaluate_gates, gate_figures
from llmft.evaluation.judges import Comparison, make_judge, summarize
from llmft.evaluation.metrics import score_outputs, toxicity_scorer
from llmft.evaluation.suites import Suite, load_suites

N_EXAMPLES = 3


@dataclass
class Side:
    """One model under evaluation, as an endpoint plus what identifies it."""

    label: str
    client: EndpointClient
    info: dict


class Evaluator:
    """Suites + judge + scorer of one EvalSpec; Ray-free and endpoint-agnostic."""

    def __init__(self, spec: Any, suites: list[Suite]):
        self.spec, self.suites = spec, suites
        preflight(spec)
        self.judge = make_judge(spec.judge, spec.tenant)
        self.toxicity = toxicity_scorer(spec.toxicity_scorer)
        self.trained_system: str | None = None  # the candidate's curation system prompt, when the spec sets none

    def system_for(self, suite: Suite) -> str | None:
        """The system message a suite's chat requests carry (the spec's, else the one training used)."""
        return (suite.system_prompt if suite.system_prompt is not None else self.trained_system) or None

    def requests(self, suite: Suite) -> list:
        """What each prompt is sent as: raw text (completions), or messages with the system prompt (chat)."""
        if suite.api != "chat":
            return [it.prompt for it in suite.items]
        return [it.chat(self.system_for(suite)) for it in suite.items]

    def client(self, url: str, model: str, secret: str | None = None, field: str = "api_key_secret") -> EndpointClient:
        """A client for `url`; `secret` names the tenant's credential sent as the bearer key."""
        key = credentials.resolve(self.spec.tenant, secret, field) if secret else None
        return EndpointClient(url, model, concurrency=self.spec.concurrency, timeout_s=self.spec.request_timeout_s,
                              retries=self.spec.retries, api_key=key)

    async def _generate(self, sides: list[Side]) -> list[dict[str, GenerationRun]]:
        async def one(side: Side, suite: Suite) -> GenerationRun:
            return await side.client.generate(self.requests(suite), max_tokens=suite.max_new_tokens, api=suite.api)

        jobs = [one(side, suite) for side in sides for suite in self.suites]
        runs = await asyncio.gather(*jobs)
        n = len(self.suites)
        return [{s.name: runs[i * n + j] for j, s in enumerate(self.suites)} for i in range(len(sides))]

    def generate(self, sides: list[Side]) -> tuple[list[dict[str, GenerationRun]], float]:
        """Every suite on every side concurrently (sides sharing one batch backend: one Ray Data job);
        returns the runs and the wall seconds."""
        started = time.perf_counter()
        backend = getattr(sides[0].client, "backend", None) if sides else None
        if backend is not None and all(getattr(s.client, "backend", None) is backend for s in sides):
            flat = backend.run([(side.client.model, self.requests(suite), suite.max_new_tokens, suite.api)
                                for side in sides for suite in self.suites])
            n = len(self.suites)
            runs = [{s.name: flat[i * n + j] for j, s in enumerate(self.suites)} for i in range(len(sides))]
        else:
            runs = run_sync(self._generate(sides))
        return runs, time.perf_counter() - started

    def compare(self, base: Side, cand: Side, base_runs: dict[str, GenerationRun],
                cand_runs: dict[str, GenerationRun]) -> dict:
        """Scores, verdicts and gates of the candidate vs the base (no I/O)."""
        suites_out: dict[str, dict] = {}
        golden_verdicts = []
        for suite in self.suites:
            b_out, c_out = base_runs[suite.name].outputs, cand_runs[suite.name].outputs
            kw = dict(toxicity=self.toxicity, toxicity_threshold=self.spec.toxicity_threshold)
            b_agg, b_rows = score_outputs(suite, b_out, **kw)
            c_agg, c_rows = score_outputs(suite, c_out, **kw)
            entry: dict[str, Any] = {"kind": suite.kind, "prompts": len(suite.items), "path": str(suite.path),
                                     "api": suite.api, "system_prompt": self.system_for(suite) if suite.api == "chat"
                                     else None, "base": b_agg, "candidate": c_agg, "judge": None,
                                     "failed_requests": {"base": base_runs[suite.name].failed,
                                                         "candidate": cand_runs[suite.name].failed}}
            if suite.kind == "golden":
                pairs = [Comparison(it.id, it.prompt, it.reference, c, b)
                         for it, c, b in zip(suite.items, c_out, b_out)]
                verdicts = self.judge.judge(pairs)
                golden_verdicts += verdicts
                entry["judge"] = summarize(verdicts)
                for row, v in zip(c_rows, verdicts):
                    row["verdict"] = v.outcome
            entry["items"] = [{"id": it.id, "base": b, "candidate": c}
                              for it, b, c in zip(suite.items, b_rows, c_rows)]
            entry["examples"] = [{"id": it.id, "prompt": it.prompt, "base": b, "candidate": c}
                                 for it, b, c in list(zip(suite.items, b_out, c_out))[:N_EXAMPLES]]
            suites_out[suite.name] = entry
        win = summarize(golden_verdicts) if golden_verdicts else None
        figures = gate_figures(suites_out, win["win_rate"] if win else None)
        gates = evaluate_gates(figures, self.spec.gates)
        return {"passed": gates.passed, "reasons": gates.reasons, "figures": figures,
                "gates": {**gates.to_dict(), "thresholds": self.spec.gates.model_dump()},
                "win_rate": win, "suites": suites_out,
                "base": {"label": base.label, **base.info}, "candidate": {"label": cand.label, **cand.info}}

    def report(self, comparison: dict, *, tenant: str, seconds: float, runs: list[dict[str, GenerationRun]]) -> dict:
        prompts = sum(len(s.items) for s in self.suites)
        sent = sum(len(r.outputs) for side in runs for r in side.values())
        return {"kind": "llmft.evaluation", "version": 1, "tenant": tenant, **comparison,
                "judge": self.spec.judge.model_dump(), "prompts": prompts,
                "spec_digest": _digest(self.spec),
                "throughput": {"requests": sent, "seconds": round(seconds, 3),
                               "prompts_per_s": round(sent / seconds, 3) if seconds else 0.0,
                               "per_side": [{name: r.stats() for name, r in side.items()} for side in runs]},
                "finished_at": datetime.now(timezone.utc).isoformat()}


def preflight(spec: Any, store: Any = None) -> None:
    """Refuse, before anything is sent, endpoints the operator does not allow and secrets the tenant lacks."""
    from llmft import outbound, plugins

    for field, endpoint in (("candidate_endpoint", spec.candidate_endpoint), ("base_endpoint", spec.base_endpoint)):
        if endpoint is not None:
            try:
                outbound.check_url(endpoint.url)
            except ValueError as exc:
                raise SpecError(f"{field}.url: {exc}") from None
            if endpoint.api_key_secret:
                credentials.resolve(spec.tenant, endpoint.api_key_secret, f"{field}.api_key_secret")
    if spec.judge.type == "llm":
        try:
            outbound.check_url(spec.judge.endpoint)
        except ValueError as exc:
            raise SpecError(f"judge.endpoint: {exc}") from None
        if spec.judge.api_key_secret:
            credentials.resolve(spec.tenant, spec.judge.api_key_secret, "judge.api_key_secret")
    try:
        plugins.check("toxicity_scorer", spec.toxicity_scorer)
    except ValueError as exc:
        raise SpecError(f"toxicity_scorer: {exc}") from None


def _digest(spec: Any) -> str:
    from llmft.config import spec_digest

    try:
        return spec_digest(spec)
    except Exception:  # noqa: BLE001 - a digest is informative only
        return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()


# -- resolution -------------------------------------------------------------------------------
def check_version(registry: Any, tenant: str, ref: str, what: str) -> Any:
    """Resolve and hash-verify a version; archived or tainted ones are refused (nothing is changed)."""
    rec = registry.resolve(tenant, ref)
    if rec.status == "archived":
        raise ConflictError(f"{what} {ref} resolves to {rec.ref}, which is archived; restore or pick another version")
    taint = registry.taint_reason(tenant, rec)
    if taint:
        raise ConflictError(f"{what} {ref} resolves to {rec.ref}, which is tainted: {taint}")
    registry.verify(tenant, rec.ref)  # IntegrityError naming every changed file
    return rec


def _base_digest(ref: str) -> str:
    from llmft.models.loading import model_identity, resolve_base

    return model_identity(resolve_base(ref))["sha256"]


@contextlib.contextmanager
def open_sides(spec: Any, evaluator: Evaluator, registry: Any) -> Any:
    """Yield (base Side, candidate Side, candidate record), starting a local engine for whatever has no endpoint."""
    from llmft.serving.endpoint import BASE_NAME, LocalEndpoint

    rec = check_version(registry, spec.tenant, spec.model, "model")
    kind = rec.lineage["artifacts"]["kind"]
    baseline = check_version(registry, spec.tenant, spec.baseline, "baseline") if spec.baseline else None
    if baseline is not None and baseline.base_digest != rec.base_digest:
        raise SpecError(f"baseline {baseline.ref} was trained on another base than {rec.ref}; they cannot be compared")
    base_ref = spec.base_model or rec.base_model
    need_local = spec.candidate_endpoint is None or spec.base_endpoint is None
    if need_local and _base_digest(rec.base_model) != rec.base_digest:
        raise SpecError(f"base model {rec.base_model!r} no longer has the files {rec.ref} was trained on")
    if need_local and spec.base_model and _base_digest(spec.base_model) != rec.base_digest:
        raise SpecError(f"base_model {spec.base_model!r} is not the base {rec.ref} was trained on; serve it "
                        f"yourself and pass base_endpoint")
    cand_info = {"ref": rec.ref, "semver": rec.semver, "manifest_digest": rec.manifest_digest, "kind": kind}
    base_info = ({"ref": baseline.ref, "semver": baseline.semver, "manifest_digest": baseline.manifest_digest}
                 if baseline else {"ref": base_ref, "sha256": rec.base_digest})
    cand_label = f"{rec.name}:{rec.semver}"
    base_label = f"{baseline.name}:{baseline.semver}" if baseline else f"base {Path(str(base_ref)).name}"
    with contextlib.ExitStack() as stack:
        local: dict[str, Any] = {}
        if need_local:
            from llmft.serving.engine.adapters import ResolvedAdapter

            adapters = {}
            for r in filter(None, (rec if kind == "adapter" else None, baseline)):
                adapters[f"{r.name}-{r.version}"] = ResolvedAdapter(  # verified against the digest on load
                    spec.tenant, r.name, str(r.version), str(storage.fetch(r.uri)), r.manifest_digest, r.base_model)
            full = str(registry.open(spec.tenant, rec.ref)[0]) if kind == "full" and spec.candidate_endpoint is None \
                else None
            if spec.inference == "batch":  # one Ray Data job, one vLLM engine per actor
                from llmft.evaluation.batch import BatchInference

                local["base"] = BatchInference(rec.base_model, adapters, actors=spec.batch_actors)
                if full:
                    local["full"] = BatchInference(full, {}, actors=spec.batch_actors)
            else:
                local["base"] = stack.enter_context(LocalEndpoint(rec.base_model, adapters)).url
                if full:
                    local["full"] = stack.enter_context(LocalEndpoint(full)).url

        def local_client(where: str, model: str) -> Any:
            if spec.inference == "batch":
                from llmft.evaluation.batch import BatchClient

                return BatchClient(local[where], model)
            return evaluator.client(local[where], model)

        if spec.candidate_endpoint is not None:
            e = spec.candidate_endpoint
            key_field = "candidate_endpoint.api_key_secret"
            cand = Side(cand_label, evaluator.client(e.url, e.model, e.api_key_secret, key_field),
                        {**cand_info, "endpoint": e.url})
        else:
            model = BASE_NAME if kind == "full" else f"{rec.name}-{rec.version}"
            cand = Side(cand_label, local_client("full" if "full" in local else "base", model),
                        {**cand_info, "endpoint": "local"})
        if spec.base_endpoint is not None:
            e = spec.base_endpoint
            base = Side(base_label, evaluator.client(e.url, e.model, e.api_key_secret, "base_endpoint.api_key_secret"),
                        {**base_info, "endpoint": e.url})
        else:
            model = f"{baseline.name}-{baseline.version}" if baseline else BASE_NAME
            base = Side(base_label, local_client("base", model), {**base_info, "endpoint": "local"})
        yield base, cand, rec


def training_curve(rec: Any, mlflow_uri: str) -> dict[str, list[list]]:
    """The candidate's training and validation loss by step, from its MLflow run (empty when it has none)."""
    run_id = (rec.lineage.get("training") or {}).get("mlflow_run_id")
    if not run_id:
        return {}
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from llmft.registry.experiments import metric_history

    try:
        return metric_history(MlflowClient(tracking_uri=mlflow_uri), run_id)
    except MlflowException:  # the run was deleted or lives in another tracking store: the report says so
        return {}


def trained_system_prompt(store: Any, tenant: str, rec: Any) -> str | None:
    """The format.system_prompt of the curation that made the candidate's training data (its lineage), if known.

    Read from the curated snapshot's report (its params); None when the lineage names no snapshot
    or the snapshot is gone: evaluation then sends what the spec says, nothing by default.
    """
    from llmft.data import snapshots
    from llmft.errors import LlmftError

    ref = ((rec.lineage or {}).get("dataset") or {}).get("snapshot_id")
    if not ref:
        return None
    try:
        snap = snapshots.open_snapshot(store, tenant, ref, verify=False)
        params = json.loads((Path(snap.path) / "report.json").read_text(encoding="utf-8")).get("params") or {}
    except (LlmftError, OSError, ValueError):
        return None
    return (params.get("format") or {}).get("system_prompt") or None


def run_evaluation(spec: Any, *, registry: Any = None, spec_dir: str | Path | None = None,
                   out_dir: str | Path | None = None, actor: str = "evaluation", attach: bool | None = None) -> dict:
    """Evaluate `spec.model` against its base (or baseline); returns the report, attached when `attach`."""
    from llmft.evaluation.report import write_report

    suites = load_suites(spec, spec_dir)  # every file checked before anything runs or changes
    evaluator = Evaluator(spec, suites)
    if registry is None:
        from llmft.registry import ModelRegistry

        registry = ModelRegistry()
    with open_sides(spec, evaluator, registry) as (base, cand, rec):
        evaluator.trained_system = trained_system_prompt(registry.store, spec.tenant, rec)
        runs, seconds = evaluator.generate([base, cand])
    report = evaluator.report(evaluator.compare(base, cand, runs[0], runs[1]), tenant=spec.tenant,
                              seconds=seconds, runs=runs)
    report["training_curve"] = training_curve(rec, registry.settings.mlflow_uri)
    out = Path(out_dir) if out_dir else registry.settings.storage / "eval" / spec.tenant / rec.name / \
        f"{rec.version}-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S%f')}"
    json_path, html_path = write_report(report, out)
    if not out_dir:  # the platform's own copy: on object storage when LLMFT_STORAGE is one
        storage.publish(out)
    report["files"] = {"json": storage.uri_of(json_path) if not out_dir else str(json_path),
                       "html": storage.uri_of(html_path) if not out_dir else str(html_path)}
    if spec.attach if attach is None else attach:
        report["attached"] = registry.attach_eval_report(spec.tenant, rec.ref, report, actor=actor,
                                                         html_path=html_path)
    return report


def evaluate_checkpoints(spec: Any, checkpoints: list[str | Path], base_ref: str | Path, *,
                         spec_dir: str | Path | None = None, out_dir: str | Path | None = None) -> dict:
    """Rank adapter checkpoint directories on the spec's suites; `best` passes the most gates, then wins most."""
    from llmft.evaluation.report import write_report
    from llmft.serving.endpoint import BASE_NAME, LocalEndpoint

    if not checkpoints:
        raise SpecError("no checkpoints to evaluate")
    suites = load_suites(spec, spec_dir)
    evaluator = Evaluator(spec, suites)
    names = {f"ckpt-{i}": Path(c) for i, c in enumerate(checkpoints)}
    with LocalEndpoint(base_ref, names) as ep:
        base = Side(f"base {Path(str(base_ref)).name}", evaluator.client(ep.url, BASE_NAME), {"ref": str(base_ref)})
        sides = [Side(str(p), evaluator.client(ep.url, n), {"ref": str(p)}) for n, p in names.items()]
        runs, seconds = evaluator.generate([base, *sides])
    ranking = []
    for side, cand_runs in zip(sides, runs[1:]):
        rep = evaluator.report(evaluator.compare(base, side, runs[0], cand_runs), tenant=spec.tenant,
                               seconds=seconds, runs=[runs[0], cand_runs])
        failed = sum(c["status"] == "failed" for c in rep["gates"]["checks"])
        golden = [s["candidate"]["rouge_l"] for s in rep["suites"].values() if s["kind"] == "golden"]
        entry = {"checkpoint": side.label, "passed": rep["passed"], "failed_gates": failed, "reasons": rep["reasons"],
                 "win_rate": (rep["win_rate"] or {}).get("win_rate"), "figures": rep["figures"],
                 "golden_rouge_l": sum(golden) / len(golden) if golden else None}
        if out_dir:
            files = write_report(rep, Path(out_dir) / Path(side.label).name)
            entry["report"] = str(files[0])
        ranking.append(entry)
    ranking.sort(key=lambda e: (e["failed_gates"], -(e["win_rate"] or 0), -(e["golden_rouge_l"] or 0)))
    total = sum(len(r.outputs) for side in runs for r in side.values())
    return {"best": ranking[0]["checkpoint"], "ranking": ranking,
            "throughput": {"requests": total, "seconds": round(seconds, 3),
                           "prompts_per_s": round(total / seconds, 3) if seconds else 0.0}}


def summary(report: dict) -> dict:
    """What a job result and a CLI line need (the full report stays in its files)."""
    return {"passed": report["passed"], "reasons": report["reasons"], "figures": report["figures"],
            "candidate": report["candidate"].get("ref"), "base": report["base"].get("ref"),
            "prompts_per_s": report["throughput"]["prompts_per_s"], "files": report.get("files"),
            "attached": (report.get("attached") or {}).get("index")}


def run_evaluation_job(spec: Any, ctx: Any) -> dict:
    """An evaluation job's run (`ctx` is the job model's StageContext); a failing gate still succeeds as a job.

    The verdict ("passed its gates" / "blocked: ...") is an event; the figures are the job's result.
    """
    from llmft.registry import ModelRegistry

    registry = ctx.options.get("registry") or ModelRegistry(store=ctx.store)
    report = run_evaluation(spec, registry=registry, spec_dir=ctx.options.get("spec_dir"),
                            out_dir=ctx.options.get("out_dir"), actor=ctx.actor)
    ctx.recorder.event("passed its gates" if report["passed"] else "blocked: " + "; ".join(report["reasons"]))
    return summary(report)

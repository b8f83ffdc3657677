"""`llmft models`: build the tiny base model and print a model directory's identity."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Optional

import typer

from llmft.cli.output import ActorOpt, DryRunOpt, JsonOpt, actor_name, emit, handles_errors
from llmft.errors import NotFoundError, SpecError

app = typer.Typer(no_args_is_help=True, help="Base models and registered model versions.")


@app.command("build-tiny")
@handles_errors
def build_tiny(
    out: Optional[Path] = typer.Option(None, "--out", help="Output directory [default: <storage>/models/tiny]."),
    seed: int = typer.Option(0, "--seed", help="Seed; the same seed gives bit-identical files."),
    steps: Optional[int] = typer.Option(None, "--steps", min=0, help="Pretraining steps [default: the builder's]."),
    force: bool = typer.Option(False, "--force", help="Replace an existing, non-empty output directory."),
    as_json: bool = JsonOpt,
) -> None:
    """Train the tiny tokenizer + Llama on the shipped corpus and save it with a sha256 manifest."""
    from llmft.models.tiny import build_tiny_base
    from llmft.settings import Settings

    target = out or Settings.from_env().models_dir / "tiny"
    kwargs = {"pretrain_steps": steps} if steps is not None else {}
    # deepspeed (imported by save_pretrained via accelerate) logs to stdout: keep stdout for the result
    with contextlib.redirect_stdout(sys.stderr):
        result = build_tiny_base(target, seed=seed, overwrite=force, **kwargs)
    human = (
        f"built {result['path']}\n"
        f"  identity  {result['identity']['name']} sha256:{result['identity']['sha256']}\n"
        f"  params    {result['params']:,}\n"
        f"  loss      {result['initial_loss']:.3f} -> {result['final_loss']:.3f} (held-out, before -> after)\n"
        f"  size      {result['bytes_on_disk'] / 1e6:.1f} MB, {result['seconds']:.1f} s"
    )
    emit(result, as_json, human)


@app.command("identity")
@handles_errors
def identity(
    path: Path = typer.Argument(..., help="A model directory (config.json, weights, tokenizer)."),
    name: Optional[str] = typer.Option(None, "--name", help="Name to report [default: recorded or directory name]."),
    verify: bool = typer.Option(False, "--verify", help="Also check the files against manifest.json."),
    as_json: bool = JsonOpt,
) -> None:
    """Name and sha256 of a model directory's files, as lineage records them."""
    from llmft.manifest import verify_tree
    from llmft.models.loading import model_identity

    result = model_identity(path, name=name)
    if verify:
        verify_tree(path)
        result["verified"] = True
    emit(result, as_json, f"{result['name']} sha256:{result['sha256']} ({result['files']} files)")


# -- registered versions (llmft.registry) --------------------------------------------------------
TenantOpt = typer.Option(..., "--tenant", envvar="LLMFT_TENANT", help="Tenant that owns the model.")
RefArg = typer.Argument(..., help="NAME, NAME:VERSION, NAME:SEMVER or NAME@ALIAS.")
ReasonOpt = typer.Option(..., "--reason", help="Why (recorded in the alias history and audit log).")


def _registry():  # type: ignore[no-untyped-def]
    from llmft.registry import ModelRegistry

    return ModelRegistry()


@app.command("register")
@handles_errors
def register(
    name: str = typer.Argument(..., help="Model name (tenant-scoped)."),
    source: Optional[Path] = typer.Option(None, "--from", help="A directory to register: a checkpoint a training job "
                                          "wrote (lineage from the job), or any adapter/weights dir with --lineage."),
    from_job: Optional[str] = typer.Option(None, "--from-job", help="A succeeded training job (id or name): "
                                           "registers its final output with full lineage."),
    lineage: Optional[Path] = typer.Option(None, "--lineage", help="Lineage inputs JSON for a directory no job wrote."),
    rc: bool = typer.Option(False, "--rc", help="Register as a release candidate (X.Y.Z-rc.N)."),
    semver: Optional[str] = typer.Option(None, "--semver", help="Explicit semantic version instead of the derived one."),
    tenant: str = TenantOpt, actor: Optional[str] = ActorOpt, as_json: bool = JsonOpt,
) -> None:
    """Register an immutable version (sha256 of every file, lineage); identical bytes return the existing one."""
    import json

    from llmft.jobs.release import register_job_output

    if (source is None) == (from_job is None):
        raise SpecError("give exactly one of --from DIR or --from-job JOB")
    if source is not None and not source.is_dir():
        raise NotFoundError(f"{source}: no such directory to register")
    prerelease = "rc" if rc else None
    if from_job is not None:
        rec = register_job_output(_registry(), tenant, name, actor=actor_name(actor), job_ref=from_job,
                                  prerelease=prerelease, semver=semver)
    elif lineage is not None or (source / "training_summary.json").is_file():
        inputs = None
        if lineage is not None:
            try:
                inputs = json.loads(lineage.read_text())
            except json.JSONDecodeError as exc:
                raise SpecError(f"{lineage}: not valid JSON (line {exc.lineno})") from None
        rec = _registry().register(tenant, name, source, actor=actor_name(actor), lineage=inputs,
                                   prerelease=prerelease, semver=semver)
    else:  # a checkpoint (or a folder inside one) that a training job recorded: lineage from that job
        rec = register_job_output(_registry(), tenant, name, actor=actor_name(actor), checkpoint_dir=source,
                                  prerelease=prerelease, semver=semver)
    data = {"ref": rec.ref, "semver": rec.semver, "created": rec.created, "manifest_digest": rec.manifest_digest,
            "uri": rec.uri}
    verb = "registered" if rec.created else "already registered (identical bytes)"
    emit(data, as_json, f"{verb} {rec.ref} ({rec.semver}) sha256:{rec.manifest_digest[:16]}")


@app.command("list")
@handles_errors
def list_(name: Optional[str] = typer.Argument(None, help="Only this model."), tenant: str = TenantOpt,
          as_json: bool = JsonOpt) -> None:
    """List registered versions with status, aliases and gate result."""
    from llmft.cli import backend

    rows = backend.models_list(tenant, name)
    if backend.remote() is not None:  # the API's shapes: printed as they come
        emit(rows, as_json)
        return
    lines = [f"{r['ref']}\t{r['semver']}\t{r['status']}{' TAINTED' if r['tainted'] else ''}\t"
             f"{','.join(r['aliases']) or '-'}\teval={r['eval_passed']}" for r in rows]
    emit(rows, as_json, "\n".join(lines) or "(none)")


@app.command("show")
@handles_errors
def show(ref: str = RefArg, tenant: str = TenantOpt, as_json: bool = JsonOpt) -> None:
    """One version: status, aliases, taint, lineage record."""
    from llmft.cli import backend

    emit(backend.models_show(tenant, ref), as_json)


@app.command("verify")
@handles_errors
def verify(ref: str = RefArg, tenant: str = TenantOpt, as_json: bool = JsonOpt) -> None:
    """Re-hash every file of a version; exit 1 naming any file that changed."""
    report = _registry().verify(tenant, ref)
    emit(report, as_json, f"{report['ref']} ok: {report['files']} files, {report['bytes']:,} bytes, "
                          f"{report['seconds']:.3f} s")


@app.command("lineage")
@handles_errors
def lineage_(ref: str = RefArg, tenant: str = TenantOpt, as_json: bool = JsonOpt) -> None:
    """The chain from raw snapshot to this version (evaluations, alias moves, deployments)."""
    from llmft.cli import backend

    data = backend.models_lineage(tenant, ref)
    if backend.remote() is not None:
        emit(data, as_json)
        return
    lines = [f"{data['ref']} ({data['semver']}){'  TAINTED: ' + data['taint_reason'] if data['tainted'] else ''}"]
    for step in data["chain"]:
        detail = {k: v for k, v in step.items() if k != "stage" and v not in (None, [], {})}
        lines.append(f"  {step['stage']:<18} " + " ".join(f"{k}={v}" for k, v in detail.items()
                                                           if not isinstance(v, dict)))
    emit(data, as_json, "\n".join(lines))


@app.command("promote")
@handles_errors
def promote(ref: str = RefArg, alias: str = typer.Option(..., "--alias", help="candidate | staging | production."),
            reason: str = ReasonOpt, tenant: str = TenantOpt, actor: Optional[str] = ActorOpt,
            as_json: bool = JsonOpt) -> None:
    """Move an alias to a version; staging/production need a passed evaluation report."""
    from llmft.cli import backend

    move = backend.models_promote(tenant, ref, alias, reason, actor_name(actor))
    emit(move, as_json, f"{move.get('model')}@{move.get('alias')}: {move.get('from_version')} -> {move.get('to_version')}")


@app.command("alias-history")
@handles_errors
def alias_history(name: str = typer.Argument(..., help="Model name."),
                  alias: Optional[str] = typer.Option(None, "--alias", help="Only this alias."),
                  tenant: str = TenantOpt, as_json: bool = JsonOpt) -> None:
    """Every alias move: who, when, from which version, why."""
    rows = [m.as_dict() for m in _registry().alias_history(tenant, name, alias)]
    lines = [f"{m['created_at']}\t{m['alias']}\t{m['from_version']} -> {m['to_version']}\t{m['actor']}\t{m['reason']}"
             for m in rows]
    emit(rows, as_json, "\n".join(lines) or "(no moves)")


@app.command("deprecate")
@handles_errors
def deprecate(ref: str = RefArg, reason: str = ReasonOpt, tenant: str = TenantOpt,
              actor: Optional[str] = ActorOpt, as_json: bool = JsonOpt) -> None:
    """Mark a version deprecated (still loadable)."""
    rec = _registry().deprecate(tenant, ref, reason=reason, actor=actor_name(actor))
    emit({"ref": rec.ref, "status": rec.status}, as_json, f"{rec.ref} deprecated")


@app.command("archive")
@handles_errors
def archive(ref: str = RefArg, reason: str = ReasonOpt, keep_hot: bool = typer.Option(
                False, "--keep-hot", help="Leave the files where they are instead of moving them to cold storage."),
            tenant: str = TenantOpt, actor: Optional[str] = ActorOpt, as_json: bool = JsonOpt) -> None:
    """Archive a version: never promotable again; files move to cold storage."""
    rec = _registry().archive(tenant, ref, reason=reason, actor=actor_name(actor), cold=not keep_hot)
    emit({"ref": rec.ref, "status": rec.status, "uri": rec.uri}, as_json, f"{rec.ref} archived ({rec.uri})")


@app.command("retention")
@handles_errors
def retention(name: str = typer.Argument(..., help="Model name."),
              keep: int = typer.Option(..., "--keep", min=1, help="Keep the last N versions."),
              tenant: str = TenantOpt, actor: Optional[str] = ActorOpt, dry_run: bool = DryRunOpt,
              as_json: bool = JsonOpt) -> None:
    """Archive versions outside the policy (last N + every version ever in production + aliased ones)."""
    result = _registry().retention(tenant, name, keep_last=keep, actor=actor_name(actor), dry_run=dry_run)
    verb = "would archive" if dry_run else "archived"
    emit(result, as_json, f"kept {', '.join(result['kept'])}; {verb} {', '.join(result['archive']) or 'nothing'}")


@app.command("export")
@handles_errors
def export(ref: str = RefArg, out: Path = typer.Option(..., "--out", help="Empty output directory."),
           merged: bool = typer.Option(False, "--merged", help="Merge the adapter into the base (safetensors)."),
           tenant: str = TenantOpt, as_json: bool = JsonOpt) -> None:
    """Export a verified version: the adapter directory, or merged full weights."""
    from llmft.registry.export import export_adapter, export_merged

    result = (export_merged if merged else export_adapter)(_registry(), tenant, ref, out)
    emit(result, as_json, f"exported {result['ref']} ({result['kind']}) to {result['path']}")

"""MLflow tracking: one run per training job with params, per-step metrics, lineage tags and the loss curve."""

from __future__ import annotations

import os
import platform as _platform
import time
from pathlib import Path
from typing import Any

from llmft.environment import git_commit, library_versions



def flatten(data: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = str(value)[:500]
    return out


def topology(spec: Any) -> dict[str, str]:
    r = spec.resources
    gpu = "none"
    if r.use_gpu:
        try:
            import torch

            gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "requested, none visible"
        except Exception:  # noqa: BLE001 - informational only
            gpu = "unknown"
    return {"workers": str(r.num_workers), "cpus_per_worker": str(r.cpus_per_worker), "use_gpu": str(r.use_gpu),
            "gpu": gpu, "host_cpus": str(os.cpu_count()), "torch_threads": str(r.torch_threads),
            "machine": _platform.machine(), "strategy": spec.distributed.strategy.value}


def mlflow_client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def start_run(uri: str, artifact_root: str | Path, spec: Any, lineage: dict, run_id: str | None = None) -> str:
    """Create (or reopen, on resume) the job's MLflow run and log params + lineage tags."""
    client = mlflow_client(uri)
    if run_id:
        client.update_run(run_id, status="RUNNING")
        return run_id
    from llmft.registry.experiments import ensure_experiment

    # on a tracking server its artifact store holds the run's artifacts; locally, the platform's storage
    exp_id = ensure_experiment(client, f"llmft/{spec.tenant}/training",
                               Path(artifact_root) / "mlflow-artifacts" / spec.tenant)
    tags = {"llmft.job": spec.name, "llmft.tenant": spec.tenant, "mlflow.runName": spec.name,
            **{f"llmft.{k}": str(v) for k, v in lineage.items()},
            **{f"topology.{k}": v for k, v in topology(spec).items()},
            **{f"version.{k}": v for k, v in library_versions().items()},
            "git.commit": git_commit()}
    run = client.create_run(exp_id, tags=tags, run_name=spec.name)
    from mlflow.entities import Param

    params = [Param(k, v) for k, v in sorted(flatten(spec.model_dump(mode="json")).items())]
    for i in range(0, len(params), 90):
        client.log_batch(run.info.run_id, params=params[i:i + 90])
    return run.info.run_id


class Tracker:
    """Per-step metrics from rank 0 of the workers."""

    def __init__(self, uri: str, run_id: str) -> None:
        self.client = mlflow_client(uri)
        self.run_id = run_id

    def log_metrics(self, metrics: dict, step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None]
        self.client.log_batch(self.run_id, metrics=batch)


def loss_curve_png(uri: str, run_id: str, out: Path) -> Path | None:
    """Plot loss and validation loss by step from the run's metric history."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from llmft.registry.experiments import metric_history

    history = metric_history(mlflow_client(uri), run_id)
    if not history:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, points in history.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], label=key, marker="o" if key == "val_loss" else None)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def finish_run(uri: str, run_id: str, outcome: dict, scratch: Path) -> None:
    """Loss curve artifact, final figures (epsilon included) and the run status."""
    client = mlflow_client(uri)
    png = loss_curve_png(uri, run_id, Path(scratch) / "loss_curve.png")
    if png is not None:
        client.log_artifact(run_id, str(png))
    for key in ("epsilon", "best_val_loss", "steps"):
        if outcome.get(key) is not None:
            client.set_tag(run_id, f"llmft.result.{key}", str(outcome[key]))
    for split, counts in (outcome.get("data") or {}).items():
        if isinstance(counts, dict):  # rows cut / dropped by the length limit, per split
            for key in ("cut", "dropped"):
                client.set_tag(run_id, f"llmft.data.{split}.{key}", str(counts.get(key, 0)))
    ckpt = outcome.get("checkpoint") or {}
    if ckpt:
        client.set_tag(run_id, "llmft.result.checkpoint", ckpt.get("uri", ""))
        client.set_tag(run_id, "llmft.result.weights_sha256", ckpt.get("weights_sha256", ""))
    client.set_terminated(run_id, status="FINISHED" if outcome.get("status") == "succeeded" else "FAILED")

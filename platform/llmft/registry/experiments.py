"""MLflow experiments and where their artifacts live: a tracking server's own store, or a local directory.

Against a tracking server (`http(s)://`), the server decides where artifacts go (its artifact
root or proxied store) and clients upload through it; a `file://` location chosen by a client
would only exist on the client's disk. Against a local store (SQLite, a directory), artifacts
go under the platform's storage as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SERVER_SCHEMES = ("http://", "https://", "databricks")


def is_server(tracking_uri: str) -> bool:
    """Whether `tracking_uri` names a tracking server (which refuses local paths as model sources)."""
    return str(tracking_uri).startswith(SERVER_SCHEMES)


def ensure_experiment(client: Any, name: str, local_dir: Path) -> str:
    """The id of experiment `name`, created if missing (by two processes at once, too)."""
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if not is_server(client.tracking_uri):
        Path(local_dir).mkdir(parents=True, exist_ok=True)
        location = Path(local_dir).resolve().as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:  # created meanwhile by another process
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def metric_history(client: Any, run_id: str, keys: tuple[str, ...] = ("loss", "val_loss")) -> dict[str, list[list]]:
    """`{key: [[step, value], ...]}` by step for each logged key; a resumed run re-logs steps, the latest wins."""
    out: dict[str, list[list]] = {}
    for key in keys:
        last: dict[int, float] = {}
        for m in sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp)):
            last[m.step] = m.value
        if last:
            out[key] = [[step, last[step]] for step in sorted(last)]
    return out

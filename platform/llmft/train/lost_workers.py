"""Job events for Ray Train workers that died or failed: which rank, on which node, whether that node is gone, why.

Ray Train restarts a failed worker group from the last checkpoint by itself (FailureConfig), so
without this the job would only show the "resumed from ..." that follows. Runs on the Ray Train
controller (a `UserCallback`), reporting through the job's picklable recorder, before the restart.
A worker on a machine that died first surfaces as "actor unavailable" (its process does not answer)
while the GCS still lists the node alive for some seconds, so the node's loss is judged by its
raylet no longer accepting connections, not by waiting for the GCS.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from ray.train import UserCallback


def actor_node(actor_id: str | None) -> str | None:
    """The node an actor ran on, from the GCS actor table (no dashboard needed)."""
    if not actor_id:
        return None
    try:
        from ray._private import state

        return (state.actors(actor_id) or {}).get("Address", {}).get("NodeID") or None
    except Exception:  # noqa: BLE001 - best effort: the event still names rank and cause
        return None


def node_gone(node_id: str) -> bool:
    """Whether a node is lost: dead in the GCS, or its raylet refuses connections (a machine that just died)."""
    import ray

    info = next((n for n in ray.nodes() if n.get("NodeID") == node_id), None)
    if info is None or not info.get("Alive"):
        return True
    try:
        with socket.create_connection((info["NodeManagerAddress"], int(info["NodeManagerPort"])), timeout=2):
            return False
    except OSError:
        return True


def describe(error: BaseException) -> dict:
    """What a worker's error says: its type, the cause in one line, and (for a lost actor) its node and whether
    that node is gone."""
    from ray.exceptions import RayActorError

    inner = getattr(error, "health_check_failure", None) or error  # WorkerHealthCheckFailedError wraps the death
    lines = [ln.strip() for ln in str(inner).splitlines() if ln.strip()]
    cause = next((ln for ln in lines if "died" in ln or "unavailable" in ln or "Error" in ln), lines[0] if lines else "")
    info = {"error": type(inner).__name__, "cause": cause[:300], "node_id": None, "node_lost": False,
            "preempted": bool(getattr(inner, "preempted", False))}
    if isinstance(inner, RayActorError):
        info["node_id"] = actor_node(getattr(inner, "actor_id", None))
        info["node_lost"] = bool(info["node_id"]) and node_gone(info["node_id"])
    return info


class LostWorkerEvents(UserCallback):
    """Records one job event per failed worker (rank, node, cause, time) before Ray Train restarts the group."""

    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder

    def after_exception(self, run_context: Any, worker_exceptions: dict) -> None:
        for rank, error in sorted(worker_exceptions.items()):
            try:
                info = {"rank": rank, "at": time.time(), **describe(error)}
                node = info["node_id"][:12] if info["node_id"] else None
                what = (f"lost with its node {node}" if info["node_lost"] else
                        f"lost (node {node} still up)" if node else "failed")
                self.recorder.event(f"worker rank {rank} {what}: {info['cause']}", "warning", info)
            except Exception:  # noqa: BLE001, S110 - an event must never stop Ray Train's own recovery
                pass

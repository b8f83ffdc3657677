"""The job events a Ray Train worker failure leaves (no cluster: the errors are built by hand)."""

from __future__ import annotations


class ListRecorder:
    """A recorder that keeps its events in a list (the job's StoreRecorder writes them to the store)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict]] = []

    def event(self, message: str, level: str = "info", data: dict | None = None) -> None:
        self.events.append((message, level, data or {}))


def test_failed_worker_events_name_rank_cause_and_time():
    from ray.exceptions import ActorUnavailableError

    from llmft.train.lost_workers import LostWorkerEvents, describe

    gloo = RuntimeError("[pair.cc:537] Read error [127.0.0.1]:16294: Connection reset by peer.\nmore")
    assert describe(gloo) == {"error": "RuntimeError", "cause": "[pair.cc:537] Read error [127.0.0.1]:16294: "
                              "Connection reset by peer.", "node_id": None, "node_lost": False, "preempted": False}
    gone = ActorUnavailableError("RpcError: failed to connect to all addresses", None)
    assert describe(gone)["error"] == "ActorUnavailableError" and "unavailable" in describe(gone)["cause"]
    recorder = ListRecorder()
    LostWorkerEvents(recorder).after_exception(None, {1: gone, 0: gloo})
    (m0, level, d0), (m1, _, d1) = recorder.events
    assert m0.startswith("worker rank 0 failed: [pair.cc:537]") and level == "warning" and d0["rank"] == 0
    assert m1.startswith("worker rank 1 failed: The actor") and d1["at"] >= d0["at"] > 0


def test_a_broken_recorder_never_stops_recovery():
    from llmft.train.lost_workers import LostWorkerEvents

    class Broken:
        def event(self, *a, **k):  # noqa: ANN002, ANN003, ANN202
            raise OSError("store unreachable")

    LostWorkerEvents(Broken()).after_exception(None, {0: RuntimeError("x")})  # does not raise

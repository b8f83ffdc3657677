"""Several Ray nodes on this machine (`ray.cluster_utils.Cluster`) and the loss of one, for the multi-node
tests and `benchmarks/multinode.py`.

A head with 2 CPUs (the driver's node: the Train controller, the Job API, the Serve controller and
the gateway, pinned by the custom resource `llmft_head`) and worker nodes of 1 CPU each. Losing a
worker node is `Cluster.remove_node`: every process of that node killed at once, as when a machine
dies. Nodes are added and removed from the main thread only (add_node installs signal handlers).
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

HEAD_RESOURCE = "llmft_head"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCluster:
    """A multi-node Ray on this machine, this process its driver; RAY_ADDRESS names it while it runs."""

    def __init__(self, head_cpus: int = 2, nodes: int = 2, node_cpus: int = 1) -> None:
        import ray
        from ray.cluster_utils import Cluster

        if ray.is_initialized():  # a Ray left by an earlier tier in this session: never two at once
            ray.shutdown()
        self.node_cpus = node_cpus
        port = free_port()
        # this cluster's dashboard for Ray's in-cluster State API clients and this process's state queries
        # (never one an earlier tier's Ray left in the environment; llmft.jobs.cluster.API_SERVER_ENV)
        os.environ["RAY_API_SERVER_ADDRESS"] = f"http://127.0.0.1:{port}"
        self.cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": head_cpus, "resources": {HEAD_RESOURCE: 1}, "include_dashboard": True,
            "dashboard_port": port, "dashboard_host": "127.0.0.1"})
        for _ in range(nodes):
            self.cluster.add_node(num_cpus=node_cpus)
        self.cluster.wait_for_nodes()
        self.dashboard_url = f"http://127.0.0.1:{port}"
        self._previous = os.environ.get("RAY_ADDRESS")
        os.environ["RAY_ADDRESS"] = self.cluster.address
        ray.init(address=self.cluster.address, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        self.head_id = self.cluster.head_node.node_id
        self.driver_node = ray.get_runtime_context().get_node_id()

    # -- nodes --------------------------------------------------------------------------------------------
    def alive_nodes(self) -> set[str]:
        import ray

        return {n["NodeID"] for n in ray.nodes() if n["Alive"]}

    def removable(self, node_ids) -> list[str]:  # noqa: ANN001
        """Of these nodes, the worker nodes this driver does not run on (those a test may lose)."""
        return sorted(n for n in set(node_ids)
                      if n not in (self.head_id, self.driver_node) and any(w.node_id == n for w in self.cluster.worker_nodes))

    def remove(self, node_id: str) -> float:
        """Kill every process of that node at once; returns when they are gone (time.time())."""
        node = next(n for n in self.cluster.worker_nodes if n.node_id == node_id)
        self.cluster.remove_node(node, allow_graceful=False)
        return time.time()

    def top_up(self, nodes: int = 2) -> None:
        """Add worker nodes until `nodes` are alive (after a loss, for the next test)."""
        while len(self.cluster.worker_nodes) < nodes:
            self.cluster.add_node(num_cpus=self.node_cpus)
        self.cluster.wait_for_nodes()

    def close(self) -> None:
        import ray

        ray.shutdown()
        for node in list(self.cluster.worker_nodes) + ([self.cluster.head_node] if self.cluster.head_node else []):
            try:  # Cluster.shutdown() raised AttributeError after a removed node (FIELD-NOTES); one by one
                self.cluster.remove_node(node, allow_graceful=False)
            except Exception:  # noqa: BLE001, S110 - best effort: the next node still goes
                pass
        os.environ.pop("RAY_API_SERVER_ADDRESS", None)
        if self._previous is None:
            os.environ.pop("RAY_ADDRESS", None)
        else:
            os.environ["RAY_ADDRESS"] = self._previous


def actor_nodes(class_name: str) -> dict[int, str]:
    """{pid: node id} of the live actors of a class (Ray's state API)."""
    from ray.util.state import list_actors

    actors = list_actors(filters=[("class_name", "=", class_name), ("state", "=", "ALIVE")], detail=True,
                         raise_on_missing_output=False)
    return {a.pid: a.node_id for a in actors}


def train_worker_nodes(pid_dir: Path) -> dict[int, str]:
    """{rank: node id} of the running Ray Train workers, from the pids they publish (debug.pid_dir)."""
    by_pid = actor_nodes("RayTrainWorker")
    out = {}
    for rank in (0, 1):
        try:
            pid = int((pid_dir / f"rank{rank}.pid").read_text())
        except (FileNotFoundError, ValueError):
            continue
        if pid in by_pid:
            out[rank] = by_pid[pid]
    return out


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def lose_a_training_node(lc: LocalCluster, pid_dir: Path, at_step: int, timeout: float = 300) -> dict:
    """Once rank 0 passes `at_step` with its workers on two nodes, remove a worker node that holds one; then
    wait for the replacement rank 0's first completed step. Returns the record (nodes, times, seconds)."""
    deadline = time.time() + timeout
    record: dict = {}
    while time.time() < deadline:
        step = _read(pid_dir / "rank0.step")
        if step.isdigit() and int(step) >= at_step:
            nodes = train_worker_nodes(pid_dir)
            if len(nodes) == 2:
                break
        time.sleep(0.1)
    else:
        raise TimeoutError(f"training never reached step {at_step} with two workers")
    record["worker_nodes"] = nodes
    target = lc.removable(nodes.values())
    assert target, f"no removable worker node among {nodes} (head {lc.head_id})"
    record["removed"] = target[0]
    record["step_at_loss"] = int(_read(pid_dir / "rank0.step") or step)
    old_pid = _read(pid_dir / "rank0.pid")
    record["removed_at"] = lc.remove(target[0])
    first = None
    while time.time() < deadline:  # the replacement rank 0 writes its pid and resumed step, then each step
        pid, step = _read(pid_dir / "rank0.pid"), _read(pid_dir / "rank0.step")
        if pid and pid != old_pid and step.isdigit():
            if first is None:
                first = (pid, int(step))
                record["resumed_step"] = int(step)
            elif pid == first[0] and int(step) > first[1]:
                record["next_step_s"] = time.time() - record["removed_at"]
                record["next_step"] = int(step)
                return record
            elif pid != first[0]:
                first = (pid, int(step))
        time.sleep(0.05)
    raise TimeoutError(f"no training step completed within {timeout:.0f} s of the node loss: {record}")


def retrying_load(base_url: str, key: str, stop, results: list, rate: float = 5.0, attempts: int = 6) -> None:  # noqa: ANN001
    """Steady completions from one client that retries 5xx and dropped connections with backoff (as the openai
    client does). Each result: {"t", "first": status or 0, "final": status or 0, "tries", "error"}."""
    import httpx

    with httpx.Client(base_url=base_url, timeout=30, headers={"Authorization": f"Bearer {key}"}) as http:
        while not stop.is_set():
            t0, first, status, error, tries = time.perf_counter(), None, 0, "", 0
            for attempt in range(attempts):
                tries += 1
                try:
                    r = http.post("/v1/completions", json={"model": "support", "prompt": "Hello", "max_tokens": 4,
                                                           "temperature": 0})
                    status, error = r.status_code, r.text[:200] if r.status_code >= 400 else ""
                except httpx.HTTPError as exc:
                    status, error = 0, f"{type(exc).__name__}: {exc}"
                first = status if first is None else first
                if 0 < status < 500:
                    break
                time.sleep(0.5 * 2 ** attempt)
            results.append({"t": time.time(), "first": first, "final": status, "tries": tries, "error": error})
            time.sleep(max(0.0, 1 / rate - (time.perf_counter() - t0)))


def warm_up(base_url: str, key: str, replicas: int, timeout: float = 180) -> set[str]:
    """Send completions until `replicas` different replicas have answered one (each has loaded the adapter)."""
    import httpx

    seen: set[str] = set()
    deadline = time.time() + timeout
    with httpx.Client(base_url=base_url, timeout=60, headers={"Authorization": f"Bearer {key}"}) as http:
        while len(seen) < replicas and time.time() < deadline:
            try:
                r = http.post("/v1/completions", json={"model": "support", "prompt": "Hello", "max_tokens": 4,
                                                       "temperature": 0})
                if r.status_code == 200:
                    seen.add(r.headers.get("x-llmft-replica", ""))
            except httpx.HTTPError:
                time.sleep(1)
    return seen


def wait_for(results: list, n: int, timeout: float = 60) -> None:
    """Until the load has `n` answered requests on record."""
    deadline = time.time() + timeout
    while len(results) < n and time.time() < deadline:
        time.sleep(0.2)
    if len(results) < n:
        raise TimeoutError(f"only {len(results)} requests answered in {timeout:.0f} s before the node loss")


def wait_job_api(dashboard_url: str, timeout: float = 90) -> None:
    """Until the head's job agent accepts submissions (a fresh cluster answers "No available agent" at first)."""
    from ray.job_submission import JobSubmissionClient

    client, deadline, last = JobSubmissionClient(dashboard_url), time.time() + timeout, None
    while time.time() < deadline:
        try:
            client.submit_job(entrypoint="true")
            return
        except Exception as exc:  # noqa: BLE001 - retried until the deadline, then named
            last = exc
            time.sleep(2)
    raise TimeoutError(f"the Job API at {dashboard_url} refused submissions for {timeout:.0f} s: {last}")


def deploy_app(lc: LocalCluster, store, base_model: Path, adapter_root: Path, home: Path, **app_args) -> str:  # noqa: ANN001
    """The llmft Serve app (gateway pinned to the head, replicas placed by Serve) on a free port; its base URL."""
    from llmft.serving.app_config import AppArgs, serve_config
    from llmft.serving.rollout.deployment_manager import wait_ready
    from llmft.serving.rollout.serve_backend import serve_client

    traffic = {"colours": {"blue": {"pins": {"acme/support": "1"}, "ready": True}, "green": {"pins": {}}}}
    port = free_port()
    args = AppArgs(base_model=str(base_model), base_name="tiny", adapter_source=f"dir:{adapter_root}",
                   db_url=store.url, shadow_log=str(home / "shadow.jsonl"), **app_args)
    config = serve_config("llm", args, traffic, port=port)
    config["proxy_location"] = "HeadOnly"  # nodes share this host: one proxy binds the port (a real cluster: EveryNode)
    config["applications"][0]["deployments"][0]["ray_actor_options"] = {"num_cpus": 0.25,
                                                                        "resources": {HEAD_RESOURCE: 0.01}}
    serve_client(lc.dashboard_url).deploy_applications(config)
    base_url = f"http://127.0.0.1:{port}"
    wait_ready(base_url, 240)
    return base_url

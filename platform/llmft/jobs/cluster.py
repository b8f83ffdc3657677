"""The Ray a command runs on: the configured cluster, the local head `llmft cluster up` owns, or a private local Ray.

One rule for every command that needs Ray (curate, dedupe, train, sweep, serve, the job entrypoint):
1. `RAY_ADDRESS` names a cluster: attach to it; if nothing answers there, fail in one line (never
   retry for minutes on a dead address).
2. Else the local head this LLMFT_HOME started (`llmft cluster up`, or `llmft serve up`) if it is alive.
3. Else start a private local Ray for this command (`address="local"`: a stale
   `/tmp/ray/ray_current_cluster` of a dead head is never read) and say so in one line.

Ray 2.60's token authentication: a head started here always has a token (`~/.ray/auth_token`,
generated if missing, as `ray get-auth-token --generate` does), and every process of the CLI
turns `RAY_AUTH_MODE=token` on when a token is available (as Ray's own `ray start` does), so
the Job API, the Serve REST API and `ray.init` send it. The `ray` executable used is the one
beside this interpreter, never one found on PATH.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlparse

from llmft.errors import LlmftError

DEFAULT_DASHBOARD = "http://127.0.0.1:8265"


def say(message: str) -> None:
    """One line on stderr: what the platform decided about the cluster (stdout stays the command's output)."""
    print(message, file=sys.stderr, flush=True)


# ---- token authentication ---------------------------------------------------------------------------------
def token_path() -> Path:
    """Where Ray reads its token from: `RAY_AUTH_TOKEN_PATH`, else `~/.ray/auth_token`."""
    return Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token").expanduser()


def token_available() -> bool:
    return bool(os.environ.get("RAY_AUTH_TOKEN")) or token_path().is_file()


def use_token_auth() -> bool:
    """Turn token auth on for this process and its children when a token exists and RAY_AUTH_MODE is unset.

    The rule `ray start` applies to a head; without it a client of such a head fails with
    "RAY_AUTH_MODE is currently 'disabled'". Called before Ray is imported.
    """
    mode = os.environ.get("RAY_AUTH_MODE")
    if mode is not None:
        return mode.lower() == "token"
    if token_available():
        os.environ["RAY_AUTH_MODE"] = "token"
        return True
    return False


def ensure_token() -> None:
    """A token for a head started here (generated like `ray get-auth-token --generate`), auth mode on."""
    if os.environ.get("RAY_AUTH_MODE", "token").lower() != "token":
        return  # the operator turned auth off explicitly
    if not token_available():
        import secrets

        path = token_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    os.environ["RAY_AUTH_MODE"] = "token"


# ---- addresses ---------------------------------------------------------------------------------------------
def reachable(address: str, timeout: float = 2.0) -> bool:
    """Whether something accepts TCP connections at `host:port` / `http://host:port` / `ray://host:port`."""
    parsed = urlparse(address if "://" in address else f"tcp://{address}")
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 80 if parsed.scheme == "http" else 6379)
        with socket.create_connection((parsed.hostname or "127.0.0.1", port), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def ray_executable() -> str:
    """The `ray` CLI of this interpreter's environment (a venv need not be activated)."""
    path = Path(sys.executable).parent / "ray"
    if not path.exists():
        raise LlmftError(f"no `ray` executable beside {sys.executable}; install ray into this environment")
    return str(path)


# ---- the local head this LLMFT_HOME owns --------------------------------------------------------------------
def head_file() -> Path:
    from llmft.settings import Settings

    return Settings.from_env().home / "ray-head.json"


def local_head() -> dict | None:
    """The head `llmft cluster up` / `serve up` started, if it still runs (a dead one's record is removed)."""
    path = head_file()
    if not path.is_file():
        return None
    head = json.loads(path.read_text())
    if _alive(head["pid"]) and reachable(head["gcs_address"]):
        return head
    path.unlink(missing_ok=True)
    return None


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Ray's own in-cluster clients of the State API (Ray Train's placement-group cleaner, a detached
# actor) find the dashboard through this variable, else RAY_ADDRESS, else /tmp/ray/ray_current_cluster:
# the last head `ray start` made on the machine, perhaps long gone. There the cleaner's thread dies on a
# GCS timeout and an early-stopped Tune trial's worker placement group is never removed. Set in the
# head's environment before it starts, every worker of that Ray inherits the right address.
API_SERVER_ENV = "RAY_API_SERVER_ADDRESS"


def start_head(user: str, *, num_cpus: int | None = None, dashboard_port: int = 8265,
               timeout_s: float = 120.0) -> tuple[dict, bool]:
    """Start (or join) this home's local head on behalf of `user`; (head record, whether it was started now).

    The head is `ray start --head --block` in its own process group, so stopping it stops every
    process it started (and nothing else: never `ray stop`). Logical CPUs default to
    max(4, cores): the Serve gateway and both colours must be placeable on a small machine.
    """
    head = local_head()
    if head is not None:
        if user not in head["users"]:
            head["users"].append(user)
            head_file().write_text(json.dumps(head))
        return head, False
    dashboard = f"http://127.0.0.1:{dashboard_port}"
    if reachable(dashboard):
        raise LlmftError(f"something already listens on {dashboard} (another Ray?); point RAY_ADDRESS / "
                         f"LLMFT_RAY_DASHBOARD at it, or stop it first")
    ensure_token()
    gcs_port = _free_port()
    cpus = num_cpus or max(4, os.cpu_count() or 1)
    path = head_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    log = path.with_suffix(".log")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [ray_executable(), "start", "--head", "--block", "--port", str(gcs_port), "--num-cpus", str(cpus),
             "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard_port), "--disable-usage-stats"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, API_SERVER_ENV: dashboard})
    head = {"pid": proc.pid, "gcs_address": f"127.0.0.1:{gcs_port}", "dashboard_url": dashboard,
            "num_cpus": cpus, "users": [user], "log": str(log)}
    deadline = time.monotonic() + timeout_s
    while not (reachable(head["gcs_address"]) and _dashboard_ready(dashboard)):
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop_group(proc.pid)
            lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
            raise LlmftError(f"the local Ray head did not start ({lines[-1].strip() if lines else 'no output'}; "
                             f"log: {log})")
        time.sleep(0.5)
    path.write_text(json.dumps(head))
    return head, True


def _dashboard_ready(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/api/version", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # an auth refusal: it is up
    except (OSError, ValueError):
        return False


def release_head(user: str, *, force: bool = False) -> tuple[bool, str | None]:
    """`user` no longer needs the local head; stop it when no other command and no Ray job uses it.

    Returns (stopped, why it stays up when Ray jobs keep it). Jobs submitted to the head and
    drivers attached to it (`train submit`, a `data curate` on it) are not in its users list, so
    the head's Job API is asked before stopping; `force` stops it despite them.
    """
    head = local_head()
    if head is None:
        return False, None
    head["users"] = [u for u in head["users"] if u != user]
    head_file().write_text(json.dumps(head))
    if head["users"]:
        return False, None
    if not force:
        anyway = "`llmft cluster down` stops it anyway"
        try:
            jobs = head_jobs(head)
        except Exception as exc:  # noqa: BLE001 - unknown is not "unused": keep the head and say why
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
            return False, f"the local Ray head stays up: its job list could not be read ({first}); {anyway}"
        if jobs:
            shown = ", ".join(jobs[:3]) + (f" and {len(jobs) - 3} more" if len(jobs) > 3 else "")
            return False, (f"the local Ray head stays up: {len(jobs)} unfinished Ray job"
                           f"{'s' if len(jobs) > 1 else ''} on it ({shown}); {anyway}")
    stop_head()
    return True, None


def head_jobs(head: dict) -> list[str]:
    """The Ray jobs on the head that are not finished: submitted ones pending or running, attached drivers."""
    use_token_auth()
    from ray.job_submission import JobSubmissionClient

    return unfinished_jobs(JobSubmissionClient(head["dashboard_url"]).list_jobs())


def unfinished_jobs(details: list) -> list[str]:
    """One label per job (Ray's `JobDetails`) still pending or running: its llmft job name, else Ray's id or pid.

    Ray lists its own internal drivers (the dashboard's) nowhere here, so what is left is a user's.
    """
    labels = []
    for job in details:
        status = str(getattr(job.status, "value", job.status))
        if status not in ("PENDING", "RUNNING"):
            continue
        name = (job.metadata or {}).get("name")
        if name:
            label = f"llmft job {name}"
        elif job.submission_id:
            label = f"Ray job {job.submission_id}"
        else:
            label = f"a driver (pid {job.driver_info.pid if job.driver_info else '?'})"
        labels.append(f"{label} {status.lower()}")
    return labels


def stop_head() -> dict | None:
    """Stop this home's local head (its whole process group) and forget it; the record, or None if none ran."""
    path = head_file()
    head = json.loads(path.read_text()) if path.is_file() else None
    if head is not None:
        _stop_group(head["pid"])
        path.unlink(missing_ok=True)
    return head


def _stop_group(pid: int, grace_s: float = 20.0) -> None:
    """SIGTERM the head's process group (`ray start --block` stops its children), then SIGKILL what is left."""
    import psutil

    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        procs = []
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=5)


def dashboard_url(explicit: str | None = None) -> str:
    """The dashboard (Job API, Serve REST API) a command talks to: given, LLMFT_RAY_DASHBOARD, the local head's,
    else the default local URL. Token auth is turned on here when a token exists (before any Ray client is made)."""
    use_token_auth()
    return (explicit or os.environ.get("LLMFT_RAY_DASHBOARD")
            or (local_head() or {}).get("dashboard_url") or DEFAULT_DASHBOARD)


def job_api_address() -> str | None:
    """The configured cluster's dashboard for the Job API (LLMFT_RAY_ADDRESS, else the local head's), or None."""
    use_token_auth()
    address = os.environ.get("LLMFT_RAY_ADDRESS")
    if address:
        if not reachable(address):
            raise LlmftError(f"the Ray cluster at {address} (LLMFT_RAY_ADDRESS / --address) is not reachable: "
                             f"start it, or unset it to run on a local Ray")
        return address
    head = local_head()
    return head["dashboard_url"] if head else None


# ---- a Ray session for one command ----------------------------------------------------------------------
@contextlib.contextmanager
def ray_session(*, num_cpus: int | None = None, dashboard: bool = False, worker_logs: bool = False) -> Iterator[None]:
    """Attach to the configured cluster or start a private local Ray; stop it only if started here.

    `worker_logs` forwards the workers' stdout to this process (training's one progress line per step).

    RAY_ADDRESS is exported for the duration: Ray Tune trials that start their own trainers
    find the cluster through it.
    """
    use_token_auth()
    import ray

    started = False
    previous_api_server = os.environ.get(API_SERVER_ENV)
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        head = None if address else local_head()
        if address and address != "local":
            if address != "auto" and not reachable(address):
                raise LlmftError(f"the Ray cluster at {address} (RAY_ADDRESS) is not reachable: start it, or "
                                 f"unset RAY_ADDRESS to run on a local Ray")
            ray.init(address=address, log_to_driver=worker_logs)
        elif head is not None:
            say(f"using the local Ray head at {head['gcs_address']} (`llmft cluster status`)")
            ray.init(address=head["gcs_address"], log_to_driver=worker_logs)
        else:
            say("no Ray cluster configured (RAY_ADDRESS): starting a local Ray for this command")
            init_local_ray(num_cpus=num_cpus, dashboard=dashboard, log_to_driver=worker_logs)
        started = True
    if worker_logs:
        _forward_llmft_lines_only()
    previous = os.environ.get("RAY_ADDRESS")
    os.environ["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address
    try:
        yield
    finally:
        if worker_logs:
            _restore_worker_logs()
        _restore("RAY_ADDRESS", previous)
        if started:
            ray.shutdown()
            _restore(API_SERVER_ENV, previous_api_server)


def _restore(variable: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(variable, None)
    else:
        os.environ[variable] = value


def init_local_ray(*, num_cpus: int | None = None, dashboard: bool = True, dashboard_port: int | None = None,
                   **init_kwargs: Any) -> Any:
    """`ray.init(address="local")` whose workers know its dashboard (API_SERVER_ENV; the caller clears it after)."""
    import ray

    if not dashboard:
        return ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **init_kwargs)
    port = dashboard_port or _free_port()
    os.environ[API_SERVER_ENV] = f"http://127.0.0.1:{port}"
    return ray.init(address="local", num_cpus=num_cpus, include_dashboard=True, dashboard_host="127.0.0.1",
                    dashboard_port=port, **init_kwargs)


def _forward_llmft_lines_only() -> None:
    """Of the workers' output Ray forwards to this process, print only llmft's own lines (progress), on stderr.

    Ray's controllers and helpers log warnings and even tracebacks of their own clean-up there
    (kept in the session's log files); the user sees one progress line per logged step.
    """
    from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher

    def show(data: dict) -> None:
        for line in data.get("lines", []):
            at = line.find("[llmft.train] ")
            if at >= 0:
                print(line[at:], file=sys.stderr, flush=True)

    dispatcher.remove_handler("ray_print_logs")
    dispatcher.remove_handler("llmft_lines")
    dispatcher.add_handler("llmft_lines", show)


def _restore_worker_logs() -> None:
    from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher

    dispatcher.remove_handler("llmft_lines")

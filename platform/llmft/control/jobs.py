"""Run control-plane jobs: through Ray's Job API (production) or in this process (library mode, tests).

Both runners execute the same contract as `ray job submit`: `python jobs/<stage>.py --spec FILE`,
the spec written under the job's storage directory, with `LLMFT_JOB_ID` (the store job the
control plane already created: the entrypoint reports into it and must not create another),
`LLMFT_JOB_DIR` (where it may write `result.json`) and the store locations in the environment.
Ray's job status is synced into the store's OpenAI-style states on every read.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from llmft.errors import LlmftError
from llmft.store import TERMINAL
from llmft.store.jobs import advance_job as advance

ENTRYPOINTS = {"curation": "curate.py", "training": "train.py", "sweep": "sweep.py", "evaluation": "evaluate.py"}
RAY_TO_STORE = {"PENDING": "queued", "RUNNING": "running", "SUCCEEDED": "succeeded", "FAILED": "failed",
                "STOPPED": "cancelled"}
class StageMissing(LlmftError):
    """A stage this route needs is not installed or not written yet (HTTP 501)."""


class SubmissionError(LlmftError):
    """The cluster refused or could not be reached (HTTP 503); the job is marked failed with the reason."""


def jobs_dir() -> Path:
    import llmft

    return Path(os.environ.get("LLMFT_JOBS_DIR") or Path(llmft.__file__).resolve().parents[2] / "jobs")


def job_dir(job: Any) -> Path:
    from llmft.settings import Settings

    path = Settings.from_env().storage / "jobs" / job.tenant / job.id
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_spec(job: Any) -> Path:
    import yaml

    path = job_dir(job) / "spec.yaml"
    path.write_text(yaml.safe_dump(job.spec, sort_keys=False))
    return path


def entrypoint(kind: str) -> Path:
    path = jobs_dir() / ENTRYPOINTS[kind]
    if not path.is_file():
        raise StageMissing(f"{kind} stage is not available: entrypoint {path} does not exist")
    return path


def error_line(text: str) -> str | None:
    """The last line of a log that reads like an error (`error: ...`, `...Error: ...`), if any."""
    for ln in reversed([ln.strip() for ln in text.splitlines() if ln.strip()]):
        if ln.startswith("error:") or "Error" in ln or "Exception" in ln:
            return ln[:500]
    return None


def last_error_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return error_line(text) or (lines[-1] if lines else "exited with an error")[:500]


def read_result(job: Any) -> dict:
    path = job_dir(job) / "result.json"
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {"value": data}
    except (OSError, ValueError):
        return {}


def job_env(store: Any, job: Any, actor: str) -> dict[str, str]:
    from llmft.settings import Settings

    s = Settings.from_env()
    return {"LLMFT_JOB_ID": job.id, "LLMFT_JOB_DIR": str(job_dir(job)), "LLMFT_HOME": str(s.home),
            "LLMFT_DB_URL": store.engine.url.render_as_string(hide_password=False),
            "LLMFT_MLFLOW_URI": s.mlflow_uri, "LLMFT_STORAGE": str(s.storage), "LLMFT_ACTOR": actor}


@dataclass
class JobContext:
    """What an in-process job function gets: its job, the store, progress and checkpoint reporting, cancel."""

    job: Any
    store: Any
    actor: str
    workdir: Path
    cancel_event: threading.Event = field(default_factory=threading.Event)

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def event(self, message: str, level: str = "info", data: dict | None = None) -> None:
        self.store.add_job_event(self.job.id, message, level=level, data=data)

    def checkpoint(self, step: int, uri: str, metrics: dict | None = None, sha256: str | None = None) -> Any:
        return self.store.add_checkpoint(self.job.id, step=step, uri=uri, metrics=metrics, sha256=sha256)


class InProcessRunner:
    """Runs a job in this process: a registered function in a thread, else the entrypoint as a subprocess."""

    def __init__(self, store: Any, functions: dict[str, Callable[[JobContext], dict]] | None = None,
                 python: str | None = None):
        self.store = store
        self.functions = dict(functions or {})
        self.python = python or sys.executable
        self._threads: dict[str, threading.Thread] = {}
        self._cancel: dict[str, threading.Event] = {}
        self._procs: dict[str, subprocess.Popen] = {}

    def check(self, kind: str) -> None:
        if kind not in self.functions:
            entrypoint(kind)

    def submit(self, job: Any, actor: str) -> Any:
        self.check(job.kind)
        spec_path = write_spec(job)
        job = self.store.transition_job(job.id, "queued", actor=actor, message="queued (in-process runner)")
        cancel = self._cancel[job.id] = threading.Event()
        if job.kind in self.functions:
            target, args = self._run_function, (job, actor, cancel)
        else:
            target, args = self._run_process, (job, actor, spec_path)
        thread = self._threads[job.id] = threading.Thread(target=target, args=args, daemon=True,
                                                         name=f"llmft-job-{job.id}")
        thread.start()
        return job

    def _run_function(self, job: Any, actor: str, cancel: threading.Event) -> None:
        ctx = JobContext(job, self.store, actor, job_dir(job), cancel)
        try:
            advance(self.store, job, "running", actor)
            result = self.functions[job.kind](ctx) or {}
        except Exception as exc:  # noqa: BLE001 - any failure of the job is recorded on it
            advance(self.store, job, "failed", actor, error=f"{type(exc).__name__}: {exc}"[:500])
            return
        if not cancel.is_set():
            advance(self.store, job, "succeeded", actor, result=result)

    def _run_process(self, job: Any, actor: str, spec_path: Path) -> None:
        log = job_dir(job) / "log.txt"
        env = {**os.environ, **job_env(self.store, job, actor)}
        with open(log, "wb") as out:
            proc = subprocess.Popen([self.python, str(entrypoint(job.kind)), "--spec", str(spec_path)],
                                    stdout=out, stderr=subprocess.STDOUT, env=env, cwd=str(jobs_dir().parent))
            self._procs[job.id] = proc
            advance(self.store, job, "running", actor)
            rc = proc.wait()
        if rc == 0:
            advance(self.store, job, "succeeded", actor, result=read_result(job))
        elif not self._cancel[job.id].is_set():
            advance(self.store, job, "failed", actor, error=last_error_line(log.read_text(errors="replace")))

    def sync(self, job: Any) -> Any:
        return job  # in-process jobs report straight into the store

    def cancel(self, job: Any, actor: str) -> Any:
        event = self._cancel.get(job.id)
        if event is not None:
            event.set()
        proc = self._procs.get(job.id)
        if proc is not None and proc.poll() is None:
            proc.terminate()
        return advance(self.store, job, "cancelled", actor, message="cancelled by request")

    def wait(self, job_id: str, timeout: float = 30.0) -> None:
        thread = self._threads.get(job_id)
        if thread is not None:
            thread.join(timeout)


class RayJobRunner:
    """Submits through Ray's Job API (what `ray job submit` does) and syncs Ray's status into the store."""

    def __init__(self, store: Any, address: str, python: str = "python", runtime_env: dict | None = None):
        self.store = store
        self.address = address
        self.python = python
        self.runtime_env = dict(runtime_env or {})
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from ray.job_submission import JobSubmissionClient

            self._client = JobSubmissionClient(self.address)
        return self._client

    def check(self, kind: str) -> None:
        entrypoint(kind)

    def submit(self, job: Any, actor: str) -> Any:
        path = entrypoint(job.kind)
        spec_path = write_spec(job)
        env = {**self.runtime_env.get("env_vars", {}), **job_env(self.store, job, actor)}
        submission_id = f"llmft-{job.id}-{secrets.token_hex(3)}"
        try:
            ray_id = self.client.submit_job(
                entrypoint=f"{self.python} {path} --spec {spec_path}", submission_id=submission_id,
                runtime_env={**self.runtime_env, "env_vars": env},
                metadata={"llmft_job_id": job.id, "tenant": job.tenant, "kind": job.kind, "name": job.name})
        except Exception as exc:  # noqa: BLE001 - the cluster refused: the job fails with the reason
            self.store.transition_job(job.id, "failed", actor=actor, error=f"Ray job submission failed: {exc}"[:500])
            raise SubmissionError(f"Ray job submission to {self.address} failed: {exc}") from exc
        return self.store.transition_job(job.id, "queued", actor=actor, ray_job_id=ray_id,
                                         message=f"submitted to Ray as {ray_id}")

    def sync(self, job: Any) -> Any:
        if not job.ray_job_id or job.status in TERMINAL:
            return job
        info = self.client.get_job_info(job.ray_job_id)
        target = RAY_TO_STORE.get(str(getattr(info.status, "value", info.status)))
        if target is None or target == job.status:
            return job
        kw: dict = {}
        if target == "failed":
            detail = error_line(self.client.get_job_logs(job.ray_job_id) or "")
            kw["error"] = "; ".join(filter(None, [info.message, detail]))[:500] or "Ray job failed"
        elif target == "succeeded":
            kw["result"] = read_result(job)
        return advance(self.store, job, target, "ray-job-sync", **kw)

    def cancel(self, job: Any, actor: str) -> Any:
        if job.ray_job_id:
            self.client.stop_job(job.ray_job_id)
        return advance(self.store, job, "cancelled", actor, message="cancelled by request")

    def logs(self, job: Any) -> str:
        return self.client.get_job_logs(job.ray_job_id) if job.ray_job_id else ""


def default_runner(store: Any) -> Any:
    """Ray's Job API when `LLMFT_RAY_ADDRESS` names a cluster's dashboard, else in-process subprocesses."""
    address = os.environ.get("LLMFT_RAY_ADDRESS")
    if address:
        return RayJobRunner(store, address, python=os.environ.get("LLMFT_JOB_PYTHON", "python"))
    return InProcessRunner(store)

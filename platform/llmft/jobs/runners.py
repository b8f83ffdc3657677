"""Where a queued job runs: a local process or thread (library mode, tests), or Ray's Job API (production).

Both launch the same entrypoint `python -m llmft.jobs <kind> --job-id ID`: the job process reads
its validated spec from the store (one serialisation: the spec's JSON in the job record) and
reports into the same job. Ray's job status is synced into the store on every read, for the
failures the job process cannot record itself (killed, never started, stopped).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from llmft.errors import LlmftError
from llmft.jobs.kinds import JobKind, kind
from llmft.jobs.job_run import JobRun, error_line, store_url
from llmft.store import TERMINAL

RAY_TO_STORE = {"PENDING": "queued", "RUNNING": "running", "SUCCEEDED": "succeeded", "FAILED": "failed",
                "STOPPED": "cancelled"}


class SubmissionError(LlmftError):
    """The cluster refused or could not be reached (HTTP 503); the job is marked failed with the reason."""


def job_dir(job: Any) -> Path:
    """The job's own directory (its log) under the platform's storage."""
    from llmft.settings import Settings

    path = Settings.from_env().storage / "jobs" / job.tenant / job.id
    path.mkdir(parents=True, exist_ok=True)
    return path


# What a job process inherits from the process that launches it: the machine's basics and the
# operator's boundary settings, never the launcher's environment wholesale (an API server's
# credentials, LLMFT_ALLOW_CALLABLE_SPECS, cloud keys). Named secrets reach evaluation jobs only.
INHERITED = ("PATH", "HOME", "USER", "LANG", "TZ", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH", "RAY_AUTH_MODE",
             "RAY_AUTH_TOKEN_PATH", "RAY_TMPDIR", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM",
             "LLMFT_PLUGINS", "LLMFT_OUTBOUND_ALLOW", "LLMFT_SERVE_ADDRESS", "LLMFT_API_SOURCE_ROOTS")
INHERITED_PREFIXES = ("LC_", "OMP_", "MKL_", "OPENBLAS_", "CUDA_", "NCCL_")
SECRETS_FOR = {"evaluation": ("LLMFT_SECRETS_FILE",)}


def job_env(store: Any, actor: str, kind: str, inherit: dict[str, str] | None = None) -> dict[str, str]:
    """The whole environment of a job process: what it needs to reach the platform's state, nothing more."""
    from llmft.settings import Settings

    source = os.environ if inherit is None else inherit
    env = {k: v for k, v in source.items()
           if k in INHERITED or k.startswith(INHERITED_PREFIXES) or k in SECRETS_FOR.get(kind, ())}
    s = Settings.from_env()
    env.update({"LLMFT_HOME": str(s.home), "LLMFT_DB_URL": store_url(store), "LLMFT_MLFLOW_URI": s.mlflow_uri,
                "LLMFT_STORAGE": s.storage_uri, "LLMFT_ACTOR": actor})
    if s.remote_storage:  # the platform's own object storage: its endpoint, cache and credentials
        from llmft.credentials import storage_env

        env.update(storage_env())
    return env


def entrypoint_args(job: Any) -> list[str]:
    return ["-m", "llmft.jobs", job.kind, "--job-id", job.id]


def last_error_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return error_line(text) or (lines[-1] if lines else "exited with an error")[:500]


class LocalRunner:
    """Runs jobs on this machine: the entrypoint as a subprocess, or, with `kinds` given, a kind's run in a thread.

    Threads serve tests and embedded use: `kinds` maps a kind to a JobKind whose run stands in
    for the stage (cancel sets the StageContext's `cancel_event`).
    """

    def __init__(self, store: Any, kinds: dict[str, JobKind] | None = None, python: str | None = None):
        self.store = store
        self.kinds = kinds
        self.python = python or sys.executable
        self._threads: dict[str, threading.Thread] = {}
        self._cancel: dict[str, threading.Event] = {}
        self._procs: dict[str, subprocess.Popen] = {}

    def check(self, name: str) -> None:
        kind(name, self.kinds)

    def submit(self, job: Any, actor: str) -> Any:
        self.check(job.kind)
        run = JobRun(self.store, job, actor)
        job = run.move("queued", message="queued (local runner)")
        cancel = self._cancel[job.id] = threading.Event()
        target, args = (self._run_thread, (run, cancel)) if self.kinds else (self._run_process, (run,))
        thread = self._threads[job.id] = threading.Thread(target=target, args=args, daemon=True,
                                                         name=f"llmft-job-{job.id}")
        thread.start()
        return job

    def _run_thread(self, run: JobRun, cancel: threading.Event) -> None:
        k = kind(run.job.kind, self.kinds)
        try:
            spec = k.spec_type.model_validate(run.job.spec)
            run.run(k.run, spec, cancel_event=cancel)
        except Exception:  # noqa: BLE001, S110 - JobRun recorded the failure on the job
            pass

    def _run_process(self, run: JobRun) -> None:
        job = run.job
        log = job_dir(job) / "log.txt"
        env = job_env(self.store, run.actor, job.kind)
        with open(log, "wb") as out:
            proc = subprocess.Popen([self.python, *entrypoint_args(job)], stdout=out, stderr=subprocess.STDOUT,
                                    env=env, cwd=str(job_dir(job)))
            self._procs[job.id] = proc
            rc = proc.wait()
        if self._cancel[job.id].is_set():
            return
        if rc != 0:  # the process may have died before it could record why
            run.fail(last_error_line(log.read_text(errors="replace")))

    def sync(self, job: Any) -> Any:
        return job  # local jobs report straight into the store

    def cancel(self, job: Any, actor: str) -> Any:
        event = self._cancel.get(job.id)
        if event is not None:
            event.set()
        proc = self._procs.get(job.id)
        if proc is not None and proc.poll() is None:
            proc.terminate()
        return JobRun(self.store, job, actor).cancel()

    def wait(self, job_id: str, timeout: float = 30.0) -> None:
        thread = self._threads.get(job_id)
        if thread is not None:
            thread.join(timeout)


class RayJobRunner:
    """Submits through Ray's Job API (what `ray job submit` does) and syncs Ray's status into the store.

    `command` replaces `python -m llmft.jobs` (tests use a stand-in script honouring the same contract).
    """

    def __init__(self, store: Any, address: str, python: str = "python", runtime_env: dict | None = None,
                 command: list[str] | None = None):
        self.store = store
        self.address = address
        self.python = python
        self.runtime_env = dict(runtime_env or {})
        self.command = command
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from ray.job_submission import JobSubmissionClient

            self._client = JobSubmissionClient(self.address)
        return self._client

    def check(self, name: str) -> None:
        kind(name)

    def submit(self, job: Any, actor: str) -> Any:
        self.check(job.kind)
        run = JobRun(self.store, job, actor)
        env = job_env(self.store, actor, job.kind, inherit=self.runtime_env.get("env_vars", {}))
        args = [*(self.command or [self.python, "-m", "llmft.jobs"]), job.kind, "--job-id", job.id]
        submission_id = f"llmft-{job.id}-{secrets.token_hex(3)}"
        try:
            ray_id = self.client.submit_job(
                entrypoint=" ".join(args), submission_id=submission_id,
                runtime_env={**self.runtime_env, "env_vars": env},
                metadata={"llmft_job_id": job.id, "tenant": job.tenant, "kind": job.kind, "name": job.name})
        except Exception as exc:  # noqa: BLE001 - the cluster refused: the job fails with the reason
            run.fail(f"Ray job submission failed: {exc}"[:500])
            raise SubmissionError(f"Ray job submission to {self.address} failed: {exc}") from exc
        run.move("queued")
        return self.store.record_ray_job(job.id, ray_id, actor)

    def sync(self, job: Any) -> Any:
        if not job.ray_job_id or job.status in TERMINAL:
            return job
        info = self.client.get_job_info(job.ray_job_id)
        target = RAY_TO_STORE.get(str(getattr(info.status, "value", info.status)))
        if target is None or target == job.status:
            return job
        run = JobRun(self.store, job, "ray-job-sync")
        if target == "failed":
            detail = error_line(self.client.get_job_logs(job.ray_job_id) or "")
            return run.fail("; ".join(filter(None, [info.message, detail]))[:500] or "Ray job failed")
        return run.move(target)

    def cancel(self, job: Any, actor: str) -> Any:
        if job.ray_job_id:
            self.client.stop_job(job.ray_job_id)
        return JobRun(self.store, job, actor).cancel()

    def logs(self, job: Any) -> str:
        return self.client.get_job_logs(job.ray_job_id) if job.ray_job_id else ""


def ray_runner(store: Any, address: str) -> RayJobRunner:
    """The Job API runner for a cluster's dashboard; the job's interpreter is `LLMFT_JOB_PYTHON` (default `python`)."""
    from llmft.jobs.cluster import use_token_auth

    use_token_auth()  # a head with a token refuses a client without it
    return RayJobRunner(store, address, python=os.environ.get("LLMFT_JOB_PYTHON", "python"))


def default_runner(store: Any) -> Any:
    """Ray's Job API when `LLMFT_RAY_ADDRESS` names a cluster's dashboard, else local subprocesses."""
    address = os.environ.get("LLMFT_RAY_ADDRESS")
    return ray_runner(store, address) if address else LocalRunner(store)


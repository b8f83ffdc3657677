"""Each documented command's expected failure ends in one `error:` line and exit 1, never a traceback.

No cluster, an unreachable cluster, a missing file, a wrong format, a refused spec, a refused API
key: what a newcomer hits first. Nothing here starts Ray (an unreachable address is refused
before `ray.init` is tried).
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.conftest import REPO_ROOT

DEAD = "127.0.0.1:9"  # the discard port: nothing listens, the connection is refused at once


def cli(*args: str) -> tuple[int, list[str]]:
    from llmft.cli.main import app

    result = CliRunner().invoke(app, list(args))
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), (
        f"{args}: raised {result.exception!r}")
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    return result.exit_code, lines


def assert_one_error(code: int, lines: list[str], *needles: str) -> None:
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert code == 1 and len(errors) == 1, lines
    assert "Traceback" not in "\n".join(lines), lines
    for needle in needles:
        assert needle in errors[0], errors[0]


@pytest.fixture
def pairs(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"id": str(i), "text": f"row {i} text"}) + "\n" for i in range(4)))
    return path


def test_a_configured_but_unreachable_cluster_is_one_line_and_fast(monkeypatch, pairs, tmp_path):
    import time

    monkeypatch.setenv("RAY_ADDRESS", DEAD)
    started = time.monotonic()
    code, lines = cli("data", "dedupe", str(pairs), "--out", str(tmp_path / "out"))
    assert_one_error(code, lines, DEAD, "RAY_ADDRESS", "not reachable")
    assert time.monotonic() - started < 20  # never minutes of retries against a dead GCS


def test_serve_commands_without_a_cluster_say_so(monkeypatch):
    monkeypatch.delenv("LLMFT_RAY_DASHBOARD", raising=False)
    code, lines = cli("serve", "status", "--dashboard", f"http://{DEAD}")
    assert_one_error(code, lines, f"http://{DEAD}", "llmft cluster up")
    spec = REPO_ROOT / "jobs" / "byod" / "serve.yaml"  # its dashboard_url is the default local one
    code, lines = cli("serve", "down", "assistant", "--spec", str(spec), "--dashboard", f"http://{DEAD}")
    assert_one_error(code, lines, "no Ray cluster answers")


def test_train_submit_to_an_unreachable_address(monkeypatch):
    from llmft.errors import LlmftError
    from llmft.jobs.cluster import job_api_address

    monkeypatch.setenv("LLMFT_RAY_ADDRESS", f"http://{DEAD}")
    with pytest.raises(LlmftError, match="not reachable"):
        job_api_address()


def test_missing_file_wrong_format_and_refused_spec(tmp_path):
    code, lines = cli("data", "register", "--spec", str(tmp_path / "nope.yaml"))
    assert_one_error(code, lines, "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: dataset\nname: x\ntenant: acme\nsource: a.jsonl\nformat: xlsx\n")
    code, lines = cli("data", "register", "--spec", str(bad))
    assert_one_error(code, lines, "format")
    code, lines = cli("train", "submit", "--spec", str(REPO_ROOT / "jobs" / "byod" / "train.yaml"),
                      "optim.learning_rate=-1")
    assert_one_error(code, lines, "optim.learning_rate")
    code, lines = cli("train", "submit", "--spec", str(REPO_ROOT / "jobs" / "byod" / "train.yaml"))
    assert_one_error(code, lines, "acme")  # no such tenant yet: refused before anything is created
    code, lines = cli("models", "promote", "assistant:1", "--alias", "production", "--reason", "r",
                      "--tenant", "acme")
    assert_one_error(code, lines)


def test_a_refused_api_key_is_one_line(api, monkeypatch):
    from tests.http_server import http_server

    with http_server(api.client.app) as url:
        monkeypatch.setenv("LLMFT_API_URL", url)
        monkeypatch.setenv("LLMFT_API_KEY", "llmft_x_forged")
        code, lines = cli("tenants", "list")
        assert_one_error(code, lines, "invalid or revoked")


def test_token_auth_follows_the_token_ray_wrote(monkeypatch, tmp_path):
    """A token on disk and RAY_AUTH_MODE unset: clients turn token auth on (as `ray start` does for a head)."""
    from llmft.jobs.cluster import ensure_token, use_token_auth

    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "auth_token"))
    assert use_token_auth() is False
    ensure_token()  # what a head started by llmft does first
    assert (tmp_path / "auth_token").stat().st_mode & 0o077 == 0
    monkeypatch.delenv("RAY_AUTH_MODE")
    assert use_token_auth() is True
    import os

    assert os.environ["RAY_AUTH_MODE"] == "token"
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # the operator's explicit choice wins
    assert use_token_auth() is False


def test_unfinished_ray_jobs_are_the_ones_that_keep_a_head_up():
    """`serve down` keeps the local head while a job submitted to it, or a driver attached to it, has not finished."""
    from ray.job_submission import JobDetails, JobStatus, JobType

    from llmft.jobs.cluster import release_head, unfinished_jobs

    def job(status, kind=JobType.SUBMISSION, **extra):
        return JobDetails(type=kind, status=status, entrypoint="python -m llmft.jobs train", **extra)

    details = [job(JobStatus.RUNNING, submission_id="llmft-j1-abc", metadata={"name": "my-lora"}),
               job(JobStatus.PENDING, submission_id="raysubmit_x"),
               job(JobStatus.SUCCEEDED, submission_id="raysubmit_done"),
               job(JobStatus.STOPPED, submission_id="raysubmit_stopped"),
               job(JobStatus.FAILED, submission_id="raysubmit_failed"),
               job(JobStatus.RUNNING, kind=JobType.DRIVER, job_id="02000000",
                   driver_info={"id": "02000000", "node_ip_address": "127.0.0.1", "pid": "4242"}),
               job(JobStatus.SUCCEEDED, kind=JobType.DRIVER, job_id="01000000")]
    assert unfinished_jobs(details) == ["llmft job my-lora running", "Ray job raysubmit_x pending",
                                        "a driver (pid 4242) running"]
    assert unfinished_jobs(details[2:5]) == []
    assert release_head("serve:assistant") == (False, None)  # no local head: nothing to stop, nothing to say

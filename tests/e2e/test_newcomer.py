"""A newcomer's own data to a served, queried adapter with the CLI alone: the README's bring-your-own-data script.

From a fresh LLMFT_HOME and HOME (no Ray token, no cluster running), the script
`jobs/byod/bring-your-own-data.sh` runs register → curate → train → register the job's output →
evaluate → promote → serve up → query (openai client) → serve down, as subprocesses of the
`llmft` CLI found beside this interpreter (the venv is not activated: no `ray` on PATH). Run it
under the Ray lock: `flock /tmp/llmft-ray.lock .venv/bin/python -m pytest tests/e2e/test_newcomer.py`.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SCRIPT = REPO_ROOT / "jobs" / "byod" / "bring-your-own-data.sh"
RAY_DAEMONS = ("raylet", "gcs_server")
ADJ = ["old", "new", "slow", "blue", "shared", "remote", "spare", "broken", "cheap", "quiet", "main", "second"]
NOUN = ["laptop", "router", "printer", "phone", "tablet", "monitor", "server", "browser", "keyboard", "cable",
        "account", "license", "backup", "folder", "desk"]
VERB = ["froze", "restarted", "blinked", "failed", "slowed", "crashed", "updated", "stalled", "beeped", "vanished"]
UNIT = ["minutes", "seconds", "hours", "clicks", "days", "tries"]


def write_pairs(data: Path) -> None:
    """60 short support pairs (a few with PII), 3 with prompts longer than max_seq_len, 6 held-out eval rows."""
    rng = random.Random(0)
    topics = ["reset my password", "change my email", "export my invoices", "delete my account", "add a teammate",
              "enable two-factor login", "download the app", "cancel my plan", "update my card", "rename a project"]
    rows = []
    for i in range(60):
        topic = topics[i % len(topics)]
        prompt = f"Hi, how do I {topic}? (ticket {i}, customer {rng.randint(100, 999)})"
        if i % 15 == 0:
            prompt += f" You can reach me at user{i}@example.org."
        if i in (7, 21, 44):  # long, and varied enough to pass the repetition filter
            prompt += " Some background: " + " ".join(
                f"The {rng.choice(ADJ)} {rng.choice(NOUN)} on my {rng.choice(NOUN)} {rng.choice(VERB)} after "
                f"{rng.randint(2, 90)} {rng.choice(UNIT)}." for _ in range(25))
        rows.append({"prompt": prompt, "response": f"To {topic}, open Settings, choose '{topic.split()[0]}' and "
                                                   f"follow the steps. Reply here if it still fails."})
    data.mkdir(parents=True, exist_ok=True)
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    evals = [{"prompt": f"How do I {t}?", "reference": f"To {t}, open Settings, choose '{t.split()[0]}' and follow "
                                                      f"the steps."} for t in topics[:6]]
    (data / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in evals))


def ray_children() -> list[str]:
    """Ray daemons among this test process's descendants."""
    return [f"{p.pid} {p.name()}" for p in psutil.Process().children(recursive=True) if p.name() in RAY_DAEMONS]


def processes_of(home: Path) -> list[str]:
    """Processes still running with this test's LLMFT_HOME in their environment (what the script started)."""
    left = []
    for p in psutil.process_iter(["name"]):
        try:
            if p.pid != os.getpid() and p.environ().get("LLMFT_HOME") == str(home):
                left.append(f"{p.pid} {p.info['name']}")
        except psutil.Error:
            continue
    return left


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory):
    root = tmp_path_factory.mktemp("newcomer")
    home, user_home, data = root / "llmft-home", root / "user-home", root / "my-data"
    user_home.mkdir()
    write_pairs(data)
    bin_dir = Path(sys.executable).parent
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p) != bin_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMFT_", "RAY_")) and k != "VIRTUAL_ENV"}
    env.update({"LLMFT_HOME": str(home), "HOME": str(user_home), "PATH": path, "PYTHONUNBUFFERED": "1",
                "LLMFT": str(bin_dir / "llmft"), "PYTHON": sys.executable,
                "SERVE_PORT": str(free_port()), "RAY_DASHBOARD_PORT": str(free_port())})  # off others' 8000/8265
    proc = subprocess.run(["bash", str(SCRIPT), str(data)], cwd=root, env=env, capture_output=True, text=True,
                          timeout=1200)
    (root / "output.txt").write_text(proc.stdout + "\n----- stderr -----\n" + proc.stderr)  # for a failure's reader
    return {"proc": proc, "home": home, "user_home": user_home, "env": env}


def test_the_walkthrough_runs_to_a_served_answer(newcomer):
    proc = newcomer["proc"]
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert "answer:" in proc.stdout and "'adapter': 'acme/assistant:1" in proc.stdout, proc.stdout[-2000:]
    assert "Traceback" not in out, out[-6000:]


def test_no_ray_process_is_left_and_token_auth_was_on(newcomer):
    assert processes_of(newcomer["home"]) == []  # a head `serve up` started has left this process tree
    assert ray_children() == []
    assert (newcomer["user_home"] / ".ray" / "auth_token").is_file()  # the local Ray ran with a token


def test_reports_are_honest(newcomer):
    """Dry run: planned steps and tokens; events: truncation counted; progress: one line per step."""
    out = newcomer["proc"].stdout + newcomer["proc"].stderr
    import re

    planned = re.search(r"planned: 4 steps .* tokens from \d+ examples; at max_seq_len 96: (\d+) prompts cut", out)
    assert planned and int(planned.group(1)) >= 1, out[-4000:]  # the long prompts (those in the train split)
    # `train events` reports the same count the dry run planned
    event = rf"(warning|info) +data: \d+ train examples \({planned.group(1)} prompts cut to fit"
    assert re.search(event, out), out[-4000:]
    for step in range(1, 5):  # progress shown, once per step
        assert out.count(f"[llmft.train] step {step}/4 ") == 1, out[-4000:]
    assert "starting a local Ray" in out and "starting a local Ray head" in out


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_up_names_the_deployment_that_cannot_be_placed(tmp_path, serving_adapters):
    """`cluster up` owns a 1-CPU head; `serve up` of 2-CPU replicas fails in one line instead of a dead URL."""
    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMFT_", "RAY_"))}
    env.update({"LLMFT_HOME": str(tmp_path / "home"), "HOME": str(tmp_path),
                "RAY_SERVE_SLOW_STARTUP_WARNING_S": "2", "RAY_SERVE_SLOW_STARTUP_WARNING_PERIOD_S": "2"})
    llmft = [str(bin_dir / "llmft")]
    dash = free_port()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*llmft, *args], env=env, capture_output=True, text=True, timeout=300)

    up = run("cluster", "up", "--num-cpus", "1", "--dashboard-port", str(dash))
    try:
        assert up.returncode == 0, up.stderr
        res = run("serve", "up", "--spec", str(REPO_ROOT / "serve_apps" / "deploy_support.yaml"),
                  f"adapter_source=dir:{serving_adapters['root']}", f"base_model={serving_adapters['base']}",
                  "model=support@production", "replica_cpus=2", f"dashboard_url=http://127.0.0.1:{dash}",
                  f"http.port={free_port()}", "--timeout", "120")
        errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error: ")]
        assert res.returncode == 1 and len(errors) == 1, res.stdout + res.stderr
        assert "cannot be placed" in errors[0] and "each replica needs" in errors[0], errors[0]
        assert "Traceback" not in res.stdout + res.stderr
        status = run("cluster", "status", "--json")
        assert json.loads(status.stdout)["local_head"]["users"] == ["cluster"]  # serve up let go of it
    finally:
        down = run("cluster", "down")
    assert down.returncode == 0 and "stopped" in down.stdout, down.stdout + down.stderr
    assert processes_of(tmp_path / "home") == []

"""Demo stages of release: serve v1 blue, train v2, shadow it on green, flip, query, lineage, roll back."""

from __future__ import annotations

import socket
import time

from llmft.demo.pipeline.conductor import ACTOR, TENANT, DemoContext, say, stage
from llmft.demo.pipeline.model_stages import APPROVER, MODEL, evaluate, train_and_register


# The steady load of the rollout: a ticket like the ones the model answers.
LOAD_TICKET = ("Triage this ticket. Reply with JSON only.\n\nTicket:\nProduct: PulseHR\n"
               "Hi, I cannot log in to PulseHR since this morning.")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@stage("deploy blue")
def deploy_blue(ctx: DemoContext) -> dict:
    """Start the Serve app (gateway + blue + green) with the production version live on blue."""
    from llmft.config import DeploymentSpec
    from llmft.demo.pipeline.conductor import spec
    from llmft.serving.rollout.deployment_manager import DeploymentManager

    dashboard = ctx.results["platform"]["ray_dashboard"]
    overrides = [f"http.port={_free_port()}", f"dashboard_url={dashboard}", f"model={MODEL}@production"]
    deployment = spec("deploy_triage.yaml", DeploymentSpec, overrides)
    ctx.extras["deployments"] = DeploymentManager(store=ctx.store, registry=ctx.registry)
    record = ctx.extras["deployments"].deploy(deployment, ACTOR)
    ctx.extras["deployment"] = deployment
    ctx.extras["base_url"] = f"http://{deployment.http.host}:{deployment.http.port}"
    say(f"serving {MODEL}@production on {record['live_colour']} at {ctx.extras['base_url']}/v1 (OpenAI-compatible)")
    return {"base_url": ctx.extras["base_url"], "app": deployment.name, "colours": record["colours"]}


@stage("train v2")
def train_v2(ctx: DemoContext) -> dict:
    """A second version (longer training) while v1 keeps serving."""
    return train_and_register(ctx, "triage-v2", ["optim.max_steps=500", "seed=1"])


@stage("evaluate v2")
def evaluate_v2(ctx: DemoContext) -> dict:
    result = evaluate(ctx, ctx.results["train v2"]["version"])
    if result["passed"]:
        ctx.registry.promote(TENANT, f"{MODEL}:{ctx.results['train v2']['version']}", "staging",
                             reason="gates passed", actor=ACTOR)
    return result


@stage("shadow and flip")
def shadow_and_flip(ctx: DemoContext) -> dict:
    """Deploy v2 to green, smoke it, mirror live traffic to it, flip (nothing restarts), watch its SLOs."""
    import threading

    v2 = ctx.results["train v2"]
    # A short shadow and SLO watch keep the demo quick; production specs watch for minutes.
    deployment = ctx.extras["deployment"].model_copy(
        update={"model": f"{MODEL}:{v2['version']}", "shadow_s": 6.0, "watch_s": 5.0})
    key, _ = ctx.store.create_api_key(TENANT, "developer", ACTOR)
    ctx.extras["api_key"] = key
    stop = threading.Event()
    traffic = threading.Thread(target=_steady_load, args=(ctx.extras["base_url"], key, stop, ctx.extras), daemon=True)
    traffic.start()
    try:
        record = ctx.extras["deployments"].deploy(deployment, ACTOR)
    finally:
        stop.set()
        traffic.join(10)
    ctx.registry.promote(TENANT, f"{MODEL}:{v2['version']}", "production", reason="flipped to green",
                         actor=APPROVER)
    load = ctx.extras.get("load", {})
    say(f"{MODEL}:{v2['version']} live on {record['live_colour']} after {record['steps']}; flip effective in "
        f"{record['flip_s']:.2f}s; requests during rollout: {load.get('sent', 0)} sent, {load.get('failed', 0)} failed")
    return {"flip_s": record["flip_s"], "steps": record["steps"], "live": record["live_colour"], **load}


def _steady_load(base_url: str, key: str, stop, sink: dict) -> None:  # type: ignore[no-untyped-def]
    """A bounded, steady trickle of requests to 127.0.0.1 so the rollout happens under traffic."""
    import httpx

    sent = failed = 0
    with httpx.Client(timeout=30) as client:
        while not stop.is_set() and sent < 2000:
            r = client.post(f"{base_url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                            json={"model": MODEL, "messages": [{"role": "user", "content": LOAD_TICKET}],
                                  "max_tokens": 8})
            sent += 1
            failed += r.status_code != 200
            time.sleep(0.2)
    sink["load"] = {"sent": sent, "failed": failed}


@stage("query")
def query(ctx: DemoContext) -> dict:
    """A new ticket through the official openai client; the JSON answer is parsed and checked against the
    ticket's truth; the response names what produced it; print its lineage."""
    import json

    from openai import OpenAI

    from llmft.demo.triage import new_ticket

    ticket = new_ticket(ctx.seed)
    client = OpenAI(base_url=ctx.extras["base_url"] + "/v1", api_key=ctx.extras["api_key"], max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": ticket.prompt}], max_tokens=64, temperature=0)
    text = raw.parse().choices[0].message.content
    served_by = {h: raw.headers.get(f"x-llmft-{h}") for h in ("colour", "adapter", "adapter-version", "base-revision")}
    try:
        verdict = json.loads(text)
    except ValueError:
        verdict = None
    right = {f: isinstance(verdict, dict) and verdict.get(f) == v for f, v in ticket.labels.items()}
    say("a new ticket (a customer in no training or evaluation row):")
    for line in ticket.text.splitlines():
        say(f"  | {line}")
    say(f"answer: {text}")
    say(f"parsed: {'yes' if verdict is not None else 'NO'}; right fields {sum(right.values())}/{len(right)} "
        f"(truth {json.dumps(ticket.labels)})")
    say(f"served by: {served_by}")
    version = ctx.results["train v2"]["version"]
    lineage = ctx.registry.lineage(TENANT, f"{MODEL}:{version}")
    _print_lineage(lineage)
    return {"ticket": ticket.prompt, "answer": text, "parsed": verdict, "truth": ticket.labels, "right": right,
            "served_by": served_by, "lineage": [link["stage"] for link in lineage["chain"]]}


def _print_lineage(lineage: dict) -> None:
    say("lineage of that answer (raw snapshot -> curated -> training -> version -> evals, aliases, deployments):")
    for link in lineage["chain"]:
        detail = {k: v for k, v in link.items() if k in ("ref", "id", "job_id", "mlflow_run_id", "semver",
                                                         "alias", "to", "reason", "passed", "event", "deployment")}
        say(f"  {link['stage']:<18} {detail}")


@stage("rollback")
def rollback(ctx: DemoContext) -> dict:
    """Flip back to blue (still hot), and move the production alias back with the reason recorded."""
    import httpx

    record = ctx.extras["deployments"].rollback(TENANT, ctx.extras["deployment"].name,
                                                "demo: roll back to the previous version", ACTOR)
    v1 = ctx.results["train v1"]["version"]
    ctx.registry.promote(TENANT, f"{MODEL}:{v1}", "production", reason="rolled back", actor=APPROVER)
    r = httpx.post(f"{ctx.extras['base_url']}/v1/completions", timeout=60,
                   headers={"Authorization": f"Bearer {ctx.extras['api_key']}"},
                   json={"model": MODEL, "prompt": "Hello", "max_tokens": 4})
    colour = r.headers.get("x-llmft-colour")
    say(f"rolled back in {record['rollback_s']:.2f}s; now served by {colour} ({r.headers.get('x-llmft-adapter-version')})")
    return {"rollback_s": record["rollback_s"], "colour_after": colour, "live": record["live_colour"],
            "adapter_version_after": r.headers.get("x-llmft-adapter-version")}

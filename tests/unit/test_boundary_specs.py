"""Security catalogue, the tenant boundary inside specs (issue 12, findings 1, 2, 3, 5 and 7's finite numbers):
no code, secret or private data crosses the boundary by a caller's choice. Each entry is the attack (an API
request with a developer key, or the spec an operator's CLI would load), the clear refusal naming the field
and what is allowed, and "nothing changed" (every table, the audit chain other than recorded denials, the
stored files: `Api.state()` from tests/control_fixtures.py). Every entry failed on the code before the fix;
the comment on each says what it reproduced.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import pytest

from llmft.errors import PermissionDeniedError, SpecError
from tests.control_fixtures import expect_error as _err
from tests.control_fixtures import post_as as _post
from tests.control_fixtures import training_spec

EVAL = {"model": "support", "suites": [{"name": "g", "kind": "golden", "path": "golden.jsonl"}]}


def _no_server_paths(api, message: str) -> None:  # noqa: ANN001
    assert str(api.home) not in message and "/tmp/" not in message and "/etc/" not in message, message


# -- finding 1: no code named by a caller -------------------------------------------------------------
@pytest.mark.parametrize("segment,spec,field", [
    # Reproduces the critical finding: `os:system` as the curation scorer was accepted (201) and the job
    # imported it and called it on row text, with LLMFT_DB_URL in its environment.
    ("curation-jobs", {"source": "s", "output": "o", "filters": {"toxicity_scorer": "os:system"}},
     r"filters\.toxicity_scorer"),
    ("curation-jobs", {"source": "s", "output": "o", "filters": {"toxicity_scorer": "subprocess:check_output"}},
     r"filters\.toxicity_scorer"),
    # The evaluation spec's scorer was the same door.
    ("evaluations", {**EVAL, "toxicity_scorer": "os:system"}, r"toxicity_scorer"),
])
def test_a_spec_naming_code_is_refused_with_the_registered_names(api, segment, spec, field):
    before = api.state()
    r = _post(api, segment, json={"spec": spec})
    _err(r, 422, field + r".*code cannot be named in a spec.*allowed: lexicon")
    assert api.state() == before


def test_the_api_refuses_module_callable_even_when_the_operator_allows_it_for_the_cli(api, monkeypatch):
    # Reproduces: nothing told an API spec from an operator's spec; with callables allowed, the API took them.
    monkeypatch.setenv("LLMFT_ALLOW_CALLABLE_SPECS", "1")
    before = api.state()
    r = _post(api, "curation-jobs", json={"spec": {"source": "s", "output": "o",
                                                    "filters": {"toxicity_scorer": "os:system"}}})
    _err(r, 422, r"filters\.toxicity_scorer.*not a registered toxicity scorer")
    assert api.state() == before


def test_an_unregistered_name_is_refused_listing_the_operators_plugins(api, monkeypatch):
    # Reproduces: any name without a colon failed only when the job ran; the allowed names were never said.
    monkeypatch.setenv("LLMFT_PLUGINS", "toxicity_scorers.strict=llmft.data.quality:lexicon_toxicity")
    before = api.state()
    r = _post(api, "curation-jobs", json={"spec": {"source": "s", "output": "o",
                                                    "filters": {"toxicity_scorer": "perspective"}}})
    _err(r, 422, r"'perspective' is not a registered toxicity scorer; allowed: lexicon, strict")
    assert api.state() == before
    ok = _post(api, "curation-jobs", json={"spec": {"source": "s", "output": "o2",
                                                     "filters": {"toxicity_scorer": "strict"}}})
    assert ok.status_code == 201, ok.text  # a registered plugin, named by name, is accepted


def test_built_in_plugins_are_entry_points_installed_with_the_platform():
    # Reproduces: there was no registry; `lexicon` was a string compared in code.
    from importlib.metadata import entry_points

    from llmft import plugins
    from llmft.data.quality import lexicon_toxicity

    assert "lexicon" in {ep.name for ep in entry_points(group="llmft.toxicity_scorers")}
    assert plugins.registered("toxicity_scorer")["lexicon"] == "llmft.data.quality:lexicon_toxicity"
    assert plugins.load("toxicity_scorer", "lexicon") is lexicon_toxicity


def test_a_job_reading_a_spec_that_names_code_imports_nothing(tmp_path, monkeypatch):
    # Reproduces: the curation step imported whatever `module:callable` its spec file named. A spec that
    # skipped validation (written to the job's spec file by hand) must still import nothing at run time.
    from llmft.config import CurationSpec, FilterSpec, load_spec
    from llmft.data.quality import QualityFilter

    marker = tmp_path / "pwned"
    (tmp_path / "evil_scorer.py").write_text(f"open({str(marker)!r}, 'w').write('x')\ndef score(t):\n    return 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    forged = FilterSpec.model_construct(**{**FilterSpec().model_dump(), "toxicity_scorer": "evil_scorer:score"})
    with pytest.raises(SpecError, match=r"filters\.toxicity_scorer: .*allowed: lexicon"):
        QualityFilter.from_spec(forged, ("prompt", "response"))
    spec_file = tmp_path / "curate.yaml"
    spec_file.write_text("kind: curation\ntenant: acme\nsource: s\noutput: o\n"
                         "filters: {toxicity_scorer: 'evil_scorer:score'}\n")
    with pytest.raises(SpecError, match=r"filters\.toxicity_scorer"):
        load_spec(spec_file, expect=CurationSpec)
    assert not marker.exists()
    # The operator's own CLI spec may name code only when the operator's settings say so.
    monkeypatch.setenv("LLMFT_ALLOW_CALLABLE_SPECS", "1")
    assert load_spec(spec_file, expect=CurationSpec).filters.toxicity_scorer == "evil_scorer:score"


# -- finding 2: no secret or private data leaves by a caller's choice ---------------------------------------
@pytest.mark.parametrize("extra,pattern", [
    # Reproduces: the bearer key was read from any env var the spec named, e.g. the metadata DB URL.
    ({"candidate_endpoint": {"url": "http://127.0.0.1:8000/v1", "model": "x", "api_key_env": "LLMFT_DB_URL"}},
     r"candidate_endpoint\.api_key_env: .*not accepted.*api_key_secret"),
    ({"base_endpoint": {"url": "http://127.0.0.1:8000/v1", "model": "x", "api_key_env": "LLMFT_DB_URL"}},
     r"base_endpoint\.api_key_env: .*api_key_secret"),
    ({"judge": {"type": "llm", "endpoint": "http://127.0.0.1:9/v1", "model": "j", "api_key_env": "HOME"}},
     r"judge\.api_key_env"),
    # Reproduces: private eval prompts (and the key) went to any host the spec named.
    ({"candidate_endpoint": {"url": "http://attacker.example:8080/v1", "model": "x"}},
     r"candidate_endpoint\.url: .*attacker\.example:8080 is not an allowed outbound endpoint.*LLMFT_OUTBOUND_ALLOW"),
    ({"base_endpoint": {"url": "https://203.0.113.9/v1", "model": "x"}}, r"base_endpoint\.url: .*203\.0\.113\.9:443"),
    ({"judge": {"type": "llm", "endpoint": "http://judge.attacker.example/v1", "model": "j"}},
     r"judge\.endpoint: .*not an allowed outbound endpoint"),
    ({"candidate_endpoint": {"url": "http://127.0.0.1@attacker.example/v1", "model": "x"}},
     r"candidate_endpoint\.url: .*credentials in the URL"),
    ({"candidate_endpoint": {"url": "file:///etc/passwd", "model": "x"}}, r"candidate_endpoint\.url: .*http"),
])
def test_outbound_endpoints_and_keys_are_the_operators_choice(api, extra, pattern):
    before = api.state()
    r = _post(api, "evaluations", json={"spec": {**EVAL, **extra}})
    _err(r, 422, pattern)
    assert api.state() == before


def test_keys_are_named_secrets_of_the_callers_tenant_only(tmp_path, monkeypatch):
    # Reproduces: there were no named secrets; a spec could only point at the process environment.
    from llmft.config import EvalSpec, spec_from_dict
    from llmft.evaluation.runner import Evaluator, preflight

    secrets_file = tmp_path / "secrets.yaml"
    secrets_file.write_text("acme: {serve: acme-serve-key}\nglobex: {judge: globex-judge-key}\n")
    monkeypatch.setenv("LLMFT_SECRETS_FILE", str(secrets_file))
    endpoint = {"url": "http://127.0.0.1:8000/v1", "model": "support@staging", "api_key_secret": "serve"}
    mine = spec_from_dict(EvalSpec, {**EVAL, "tenant": "acme", "candidate_endpoint": endpoint})
    evaluator = Evaluator(mine, [])
    client = evaluator.client(endpoint["url"], endpoint["model"], "serve", "candidate_endpoint.api_key_secret")
    assert client.api_key == "acme-serve-key"
    theirs = spec_from_dict(EvalSpec, {**EVAL, "tenant": "acme", "judge": {
        "type": "llm", "endpoint": "http://127.0.0.1:9/v1", "model": "j", "api_key_secret": "judge"}})
    with pytest.raises(SpecError, match=r"judge\.api_key_secret: no secret 'judge' is configured for tenant "
                                        r"'acme' \(configured: serve\)") as info:
        preflight(theirs)
    assert "globex-judge-key" not in str(info.value) and str(secrets_file) not in str(info.value)
    with pytest.raises(SpecError, match=r"judge\.api_key_secret"):
        Evaluator(theirs, [])  # the evaluator refuses before any request is sent


def test_the_operator_widens_the_outbound_allowlist_and_clients_enforce_it(monkeypatch):
    # Reproduces: the HTTP client and the judge sent to whatever URL they were given.
    from llmft.config import EvalSpec, spec_from_dict
    from llmft.evaluation.client import EndpointClient, EndpointError
    from llmft.evaluation.judges import LlmJudge

    with pytest.raises(EndpointError, match=r"attacker\.example:80 is not an allowed"):
        EndpointClient("http://attacker.example/v1", "m")
    with pytest.raises(SpecError, match=r"judge\.endpoint"):
        LlmJudge("http://attacker.example/v1", "j")
    monkeypatch.setenv("LLMFT_OUTBOUND_ALLOW", "judge.internal:8000, *.models.corp")
    judge = {"type": "llm", "endpoint": "http://judge.internal:8000/v1", "model": "j"}
    assert spec_from_dict(EvalSpec, {**EVAL, "tenant": "acme", "judge": judge}).judge.endpoint.endswith("/v1")
    assert EndpointClient("https://a.models.corp/v1", "m").url == "https://a.models.corp/v1"
    with pytest.raises(SpecError, match=r"judge\.endpoint: .*judge\.internal:9000"):
        spec_from_dict(EvalSpec, {**EVAL, "tenant": "acme",
                                  "judge": {**judge, "endpoint": "http://judge.internal:9000"}})


# -- finding 3: paths resolve inside the tenant, all the way down --------------------------------------------
def _inboxes(tmp_path):  # noqa: ANN202
    from llmft.control.paths import inbox

    acme, globex = inbox("acme"), inbox("globex")
    (globex / "globex-secret.jsonl").write_text('{"text": "globex private row"}\n')
    (acme / "ds").mkdir()
    (acme / "ds" / "mine.jsonl").write_text('{"text": "acme row"}\n')
    return acme, globex


@pytest.mark.parametrize("link,target,source,named", [
    # Reproduces: a nested link into another tenant's inbox registered as acme's dataset with globex's rows.
    ("ds/steal.jsonl", "../../globex/globex-secret.jsonl", "ds", "steal.jsonl"),
    # ... and the same for any file on the server.
    ("ds/passwd.jsonl", "/etc/passwd", "ds", "passwd.jsonl"),
    # ... and a link to a whole directory, walked as if it were acme's.
    ("ds/sub", "../../globex", "ds", "sub"),
    # ... and top-level links when the source is the inbox itself.
    ("steal.jsonl", "../globex/globex-secret.jsonl", ".", "steal.jsonl"),
])
def test_links_out_of_the_tenant_are_refused_at_registration(api, tmp_path, link, target, source, named):
    acme, _ = _inboxes(tmp_path)
    os.symlink(target, acme / link)
    before = api.state()
    r = _post(api, "datasets", json={"name": "stolen", "source": source})
    _err(r, 403, rf"source: '{named}' links outside the tenant's storage")
    _no_server_paths(api, r.json()["error"]["message"])
    assert api.state() == before
    assert not any("globex private row" in p.read_text(errors="replace")
                   for p in (api.home / "storage" / "datasets").rglob("*.jsonl") if p.is_file())


def test_links_inside_the_tenant_still_register(api, tmp_path):
    acme, _ = _inboxes(tmp_path)
    (acme / "shared").mkdir()
    (acme / "shared" / "extra.jsonl").write_text('{"text": "acme extra"}\n')
    os.symlink("../shared/extra.jsonl", acme / "ds" / "extra.jsonl")
    r = _post(api, "datasets", json={"name": "ok", "source": "ds"})
    assert r.status_code == 201 and r.json()["summary"]["rows"] == 2, r.text


def test_the_operators_cli_registration_refuses_links_out_too(store, tmp_path):
    # Reproduces: only the top-level path was checked; the library walk followed every link.
    from llmft.config import DatasetSpec
    from llmft.data import snapshots

    store.create_tenant("acme", "admin")
    src = tmp_path / "export"
    src.mkdir()
    (src / "ok.jsonl").write_text('{"text": "fine"}\n')
    os.symlink("/etc/hostname" if Path("/etc/hostname").exists() else "/etc/passwd", src / "leak.jsonl")
    with pytest.raises(PermissionDeniedError, match=r"'leak\.jsonl' links outside") as info:
        snapshots.register(DatasetSpec(name="d", tenant="acme", source=str(src)), store, "op")
    assert str(tmp_path) not in str(info.value)
    assert store.list_snapshots("acme") == [] and not list((snapshots.datasets_root() / "acme").rglob("*.jsonl"))


def test_a_link_planted_in_a_stored_snapshot_is_refused_when_read(store, tmp_path):
    # Reproduces: readers walked a snapshot directory following links, so a link planted there was read.
    from llmft.config import DatasetSpec
    from llmft.data import snapshots

    store.create_tenant("acme", "admin")
    src = tmp_path / "t.jsonl"
    src.write_text('{"text": "row"}\n')
    rec, _ = snapshots.register(DatasetSpec(name="d", tenant="acme", source=str(src)), store, "op")
    secret = tmp_path / "other.jsonl"
    secret.write_text('{"text": "not acme"}\n')
    stored = Path(rec.uri)
    stored.chmod(0o755)
    os.symlink(secret, stored / "planted.jsonl")
    snap = snapshots.open_snapshot(store, "acme", "d", verify=False)
    with pytest.raises(PermissionDeniedError, match=r"'planted\.jsonl' links outside"):
        snapshots.data_files(snap)


# -- finding 5: no orphan copies ------------------------------------------------------------------------
def test_the_same_bytes_under_a_new_name_write_nothing_and_return_the_existing_ref(api):
    # Reproduces: the old ref came back but a full read-only copy was written under the new name's
    # directory, with no row and no audit record. Chosen fix: write nothing and say where the bytes are,
    # since the snapshot id is the content digest and one row per (id, tenant) already records them.
    from llmft.control.paths import inbox

    (inbox("acme") / "t.jsonl").write_text('{"text": "one"}\n{"text": "two"}\n')
    first = _post(api, "datasets", json={"name": "first", "source": "t.jsonl"})
    assert first.status_code == 201, first.text
    before = api.state()
    again = _post(api, "datasets", json={"name": "second", "source": "t.jsonl"})
    assert again.status_code == 200 and again.json()["ref"] == first.json()["ref"], again.text
    assert "already registered as first:1" in again.json()["summary"]["note"]
    assert api.state() == before
    assert not (api.home / "storage" / "datasets" / "acme" / "second").exists()


# -- finding 7 (finite numbers): epsilon, learning rates, budgets ----------------------------------------------
@pytest.mark.parametrize("raw", [b"1e309", b"Infinity", b'"inf"', b'"Infinity"', b"-1e309"])
def test_a_tenant_with_an_infinite_epsilon_budget_is_refused(api, raw):
    # Reproduces: 1e309 / Infinity / "inf" made the budget silently unlimited and the audit payload invalid JSON.
    before = api.state()
    r = api.client.post("/v1/tenants", content=b'{"name": "evil", "epsilon_budget": ' + raw + b"}",
                        headers=api.h("admin", "platform", **{"content-type": "application/json"}))
    # Refused by the schema (naming the field) or already by the API's JSON reader (saying numbers must be finite).
    assert r.status_code in (400, 422), r.text
    assert re.search(r"epsilon_budget.*finite|must be finite|not valid JSON", r.json()["error"]["message"]), r.text
    assert api.state() == before


@pytest.mark.parametrize("section,field,raw", [
    ("optim", "learning_rate", "1e309"), ("optim", "learning_rate", '"inf"'),
    ("privacy", "target_epsilon", "1e309"), ("privacy", "target_epsilon", '"Infinity"'),
    ("optim", "epochs", "1e309"), ("resources", "cpus_per_worker", '"inf"'),
])
def test_infinite_numbers_in_a_training_spec_are_refused_naming_the_field(api, section, field, raw):
    # Reproduces: `gt=0` fields took infinity (an unlimited epsilon or a learning rate of inf) with 201.
    body = json.dumps({"spec": training_spec()})[:-2] + f', "{section}": {{"{field}": {raw}}}}}}}'
    before = api.state()
    r = api.client.post("/v1/tenants/acme/training-jobs", content=body.encode(),
                        headers=api.h("developer", **{"content-type": "application/json"}))
    assert r.status_code in (400, 422), r.text
    message = r.json()["error"]["message"]
    assert re.search(rf"{section}\.{field}: Input should be a finite number|must be finite", message), message
    assert api.state() == before


def test_every_spec_refuses_non_finite_numbers_from_yaml(tmp_path):
    # Reproduces: YAML's .inf / .nan loaded into any float field (the CLI path has no JSON parser to stop it).
    from llmft.config import load_spec

    for text, field in [("optim: {learning_rate: .inf}", r"optim\.learning_rate"),
                        ("privacy: {target_epsilon: .inf}", r"privacy\.target_epsilon"),
                        ("guards: {grad_norm_max: .inf}", r"guards\.grad_norm_max"),
                        ("lora: {alpha: .inf}", r"lora\.alpha")]:
        path = tmp_path / "t.yaml"
        path.write_text(f"kind: training\nname: t\ntenant: acme\nbase_model: tiny\ndataset: d\n{text}\n")
        with pytest.raises(SpecError, match=field + r": Input should be a finite number"):
            load_spec(path)


def test_the_store_refuses_non_finite_budgets_and_reservations(store):
    # Reproduces: `budget < 0` and `epsilon > remaining` are both False for NaN, so NaN passed both checks.
    before = list(store.audit.records())
    for bad in (math.nan, math.inf):
        with pytest.raises(SpecError, match=r"epsilon_budget must be a finite number"):
            store.create_tenant(f"t{int(bad == math.inf)}", "op", bad)
    store.create_tenant("acme", "op")
    job = store.create_job(tenant="acme", kind="training", name="j", spec={}, actor="op")
    marked = list(store.audit.records())
    with pytest.raises(SpecError, match=r"finite"):
        store.reserve_epsilon("acme", job.id, math.nan, 1e-5, actor="op")
    assert list(store.audit.records()) == marked and len(marked) > len(before)
    assert store.privacy_summary("acme").reserved == 0.0

"""Spec for evaluating a candidate model against its base, and the gates that decide promotion."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from llmft.config.base import StrictModel, origin
from llmft.credentials import SECRET_NAME

_API_KEY_ENV_REFUSED = ("api_key_env is not accepted: an environment variable could be any of the platform's own "
                        "secrets; name a secret the operator configured for this tenant with api_key_secret")
_SECRET_HELP = "Name of a secret the operator configured for this tenant (llmft.credentials), sent as the bearer key."


def _outbound(value: str | None) -> str | None:
    from llmft import outbound

    return None if value is None else outbound.check_url(value)


def _no_env(value: str | None) -> None:
    if value is not None:
        raise ValueError(_API_KEY_ENV_REFUSED)


class SuiteSpec(StrictModel):
    name: str = Field(..., min_length=1, description="Suite name used in the report.")
    kind: Literal["golden", "regression", "safety", "memorization"] = Field(..., description="What it measures.")
    path: str = Field(..., min_length=1, description="JSONL file of prompts (and references for golden).")
    json_schema: str | None = Field(None, description="JSON-schema file outputs must satisfy (golden suites).")
    max_prompts: int | None = Field(None, ge=1, description="Use at most this many prompts.")
    api: Literal["chat", "completions"] | None = Field(
        None, description="Endpoint used for this suite: 'chat' renders the prompt as a user turn, 'completions' "
                          "sends it raw (default: completions for memorization prefixes, chat otherwise).")
    max_new_tokens: int | None = Field(None, ge=1, le=4096, description="Generation budget (default: the spec's).")
    system_prompt: str | None = Field(None, description="System message for this suite's chat requests (default: "
                                                        "the spec's); \"\" sends none.")
    fields: dict[str, str] = Field(
        default_factory=dict, description="Your field names for the suite's: {prompt: question, reference: answer}; "
                                          "keys among prompt, reference, response, instruction, input, output, "
                                          "messages, system, id, secret.")

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        known = ("prompt", "reference", "response", "instruction", "input", "output", "messages", "system", "id",
                 "secret")
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(unknown)}: use {', '.join(known)}")
        return value


class JudgeSpec(StrictModel):
    type: Literal["reference", "llm"] = Field("reference", description="Pairwise judge used for win-rate.")
    endpoint: str | None = Field(None, description="OpenAI-compatible base URL of the LLM judge; must match the "
                                                   "operator's outbound allowlist (llmft.outbound).")
    model: str | None = Field(None, description="Judge model name at that endpoint.")
    api_key_secret: str | None = Field(None, pattern=SECRET_NAME, description=_SECRET_HELP)
    api_key_env: str | None = Field(None, exclude=True, description="Refused; use api_key_secret.")
    tie_margin: float = Field(0.02, ge=0, le=1, description="Reference judge: score gaps at or below this are ties.")

    @field_validator("endpoint")
    @classmethod
    def _endpoint_allowed(cls, value: str | None) -> str | None:
        return _outbound(value)

    @field_validator("api_key_env")
    @classmethod
    def _env_refused(cls, value: str | None) -> None:
        _no_env(value)

    @model_validator(mode="after")
    def _llm_needs_endpoint(self) -> "JudgeSpec":
        if self.type == "llm" and not (self.endpoint and self.model):
            raise ValueError("an llm judge needs endpoint and model")
        return self


class GateSpec(StrictModel):
    win_rate_vs_base_min: float = Field(0.5, ge=0, le=1, description="Minimum pairwise win-rate vs base.")
    toxicity_max_delta: float = Field(0.0, ge=0, le=1, description="Max rise in toxicity rate vs base.")
    json_valid_min: float = Field(0.9, ge=0, le=1, description="Minimum share of schema-valid JSON outputs.")
    regression_max_drop: float = Field(0.05, ge=0, le=1, description="Max drop on the general-capability slice.")
    memorization_max: float = Field(0.0, ge=0, le=1, description="Max share of canaries extracted.")
    exact_match_min: float | None = Field(
        None, ge=0, le=1, description="Absolute: minimum share of golden answers equal to the reference (case "
                                      "and layout ignored); unset: off.")
    rouge_l_min: float | None = Field(None, ge=0, le=1, description="Absolute: minimum golden ROUGE-L vs the "
                                                                    "references; unset: off.")
    field_accuracy_min: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=dict, description="Absolute: minimum accuracy per field of JSON answers, e.g. "
                                          "{category: 0.8}; each field of the parsed answer is compared with the "
                                          "reference's (an unparseable answer is wrong on every field).")
    distinct_answers_min: int = Field(
        2, ge=0, description="Fewest different candidate answers per golden suite: a model that gives every prompt "
                             "the same answer fails (skipped where the references themselves are fewer); 0: off.")


class EndpointSpec(StrictModel):
    url: str = Field(..., min_length=1, description="OpenAI-compatible base URL (e.g. http://host:8000/v1); must "
                                                    "match the operator's outbound allowlist (llmft.outbound).")
    model: str = Field(..., min_length=1, description="Model name to send in each request.")
    api_key_secret: str | None = Field(None, pattern=SECRET_NAME, description=_SECRET_HELP)
    api_key_env: str | None = Field(None, exclude=True, description="Refused; use api_key_secret.")

    @field_validator("url")
    @classmethod
    def _url_allowed(cls, value: str) -> str | None:
        return _outbound(value)

    @field_validator("api_key_env")
    @classmethod
    def _env_refused(cls, value: str | None) -> None:
        _no_env(value)


class EvalSpec(StrictModel):
    kind: Literal["evaluation"] = Field("evaluation", description="Spec type tag.")
    tenant: str = Field(..., min_length=1, description="Tenant owning the model.")
    model: str = Field(..., min_length=1, description="Candidate: `name`, `name:version` or `name@alias`.")
    base_model: str | None = Field(None, description="Base to compare against (default: the candidate's base).")
    baseline: str | None = Field(
        None, description="A registered version (`name@production`, `name:3`) to compare against instead of the "
                          "bare base model; it must share the candidate's base.")
    suites: list[SuiteSpec] = Field(..., min_length=1, description="Suites to run.")
    suites_dir: str | None = Field(None, description="Directory relative suite paths resolve against "
                                                     "(default: the spec file's directory, then the cwd).")
    judge: JudgeSpec = Field(default_factory=JudgeSpec, description="Win-rate judge.")
    gates: GateSpec = Field(default_factory=GateSpec, description="Promotion gates.")
    max_new_tokens: int = Field(64, ge=1, le=4096, description="Generation budget per prompt.")
    system_prompt: str | None = Field(
        None, description="System message sent first in every chat request (a row's own system message wins). "
                          "Default: the format.system_prompt the candidate's training data was curated with (found "
                          "through its lineage), so the model is asked as it was trained; \"\" sends none.")
    concurrency: int = Field(8, ge=1, description="Requests in flight against each endpoint.")
    candidate_endpoint: EndpointSpec | None = Field(
        None, description="Where the candidate is served (a Serve app); default: a local engine is started.")
    base_endpoint: EndpointSpec | None = Field(
        None, description="Where the base (or baseline) is served; default: the local engine.")
    toxicity_scorer: str = Field("lexicon", description="Name of a registered toxicity scorer (llmft.plugins): "
                                                        "'lexicon' (llmft.data.quality) built in.")
    toxicity_threshold: float = Field(0.5, ge=0, le=1, description="An output scoring at or above this is toxic.")
    request_timeout_s: float = Field(120.0, gt=0, description="Per-request HTTP timeout.")
    retries: int = Field(3, ge=0, le=10, description="Retries per request on 5xx or connection errors.")
    attach: bool = Field(True, description="Attach the report to the candidate version in the registry.")
    inference: Literal["http", "batch"] = Field(
        "http", description="How locally served sides generate: `http` (the serving gateway over an in-process "
                            "engine) or `batch` (one Ray Data job, one vLLM engine per actor; needs vLLM).")
    batch_actors: int = Field(1, ge=1, description="Ray Data actors, one vLLM engine each (inference: batch).")

    @field_validator("toxicity_scorer")
    @classmethod
    def _registered_scorer(cls, value: str, info: ValidationInfo) -> str:
        from llmft import plugins

        return plugins.check("toxicity_scorer", value, origin(info))

    @model_validator(mode="after")
    def _unique_suites(self) -> "EvalSpec":
        names = [s.name for s in self.suites]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"suite names must be unique (repeated: {', '.join(dupes)})")
        return self

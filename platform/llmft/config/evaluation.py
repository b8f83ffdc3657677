"""Spec for evaluating a candidate model against its base, and the gates that decide promotion."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from llmft.config.base import StrictModel


class SuiteSpec(StrictModel):
    name: str = Field(..., min_length=1, description="Suite name used in the report.")
    kind: Literal["golden", "regression", "safety", "memorization"] = Field(..., description="What it measures.")
    path: str = Field(..., min_length=1, description="JSONL file of prompts (and references for golden).")
    json_schema: str | None = Field(None, description="JSON-schema file outputs must satisfy (golden suites).")
    max_prompts: int | None = Field(None, ge=1, description="Use at most this many prompts.")


class JudgeSpec(StrictModel):
    type: Literal["reference", "llm"] = Field("reference", description="Pairwise judge used for win-rate.")
    endpoint: str | None = Field(None, description="OpenAI-compatible base URL of the LLM judge.")
    model: str | None = Field(None, description="Judge model name at that endpoint.")

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


class EvalSpec(StrictModel):
    kind: Literal["evaluation"] = Field("evaluation", description="Spec type tag.")
    tenant: str = Field(..., min_length=1, description="Tenant owning the model.")
    model: str = Field(..., min_length=1, description="Candidate: `name`, `name:version` or `name@alias`.")
    base_model: str | None = Field(None, description="Base to compare against (default: the candidate's base).")
    suites: list[SuiteSpec] = Field(..., min_length=1, description="Suites to run.")
    judge: JudgeSpec = Field(default_factory=JudgeSpec, description="Win-rate judge.")
    gates: GateSpec = Field(default_factory=GateSpec, description="Promotion gates.")
    max_new_tokens: int = Field(64, ge=1, le=4096, description="Generation budget per prompt.")
    concurrency: int = Field(8, ge=1, description="Requests in flight against each endpoint.")

"""Specs for registering raw datasets and curating them into training snapshots."""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from llmft.config.base import NAME_PATTERN, StrictModel, origin


class Classification(str, Enum):
    public = "public"
    internal = "internal"
    confidential = "confidential"
    restricted = "restricted"


class DataFormat(str, Enum):
    jsonl = "jsonl"
    parquet = "parquet"
    csv = "csv"
    text = "text"


class DatasetSpec(StrictModel):
    kind: Literal["dataset"] = Field("dataset", description="Spec type tag.")
    name: str = Field(..., pattern=NAME_PATTERN, description="Dataset name, unique within the tenant.")
    tenant: str = Field(..., pattern=NAME_PATTERN, description="Owning tenant.")
    source: str = Field(..., min_length=1, description="File or directory to register (local path or pyarrow URI).")
    format: DataFormat = Field(DataFormat.jsonl, description="Reader to use for the source files.")
    classification: Classification = Field(
        Classification.internal, description="Data classification; drives policy (restricted data requires DP)."
    )
    license_class: str = Field("proprietary", description="License class carried as provenance on every row.")
    purpose: str = Field("fine-tuning", description="Purpose of use recorded as provenance on every row.")
    text_field: str = Field("text", description="Column holding free text, for readers that need one.")
    description: str = Field("", description="Free-form description shown in listings.")
    subject_field: str | None = Field(
        None, description="Field naming the data subject (e.g. customer_id); erasure matches it exactly."
    )


class PiiSpec(StrictModel):
    policy: Literal["redact", "drop"] = Field(
        "redact", description="redact: replace findings with typed placeholders; drop: remove the row."
    )
    types: list[Literal["email", "phone", "card", "ssn", "iban", "ip", "secret"]] = Field(
        default_factory=lambda: ["email", "phone", "card", "ssn", "iban", "ip", "secret"],
        description="PII types to detect.",
    )
    fields: list[str] = Field(
        default_factory=lambda: ["prompt", "response", "text"], description="Text fields scanned for PII."
    )


class FilterSpec(StrictModel):
    min_tokens: int = Field(4, ge=0, description="Drop rows with fewer tokens (base model tokenizer).")
    max_tokens: int = Field(2048, ge=1, description="Drop rows with more tokens.")
    max_duplicate_line_ratio: float = Field(0.3, ge=0, le=1, description="Drop rows whose lines repeat more.")
    max_ngram_repeat_ratio: float = Field(0.3, ge=0, le=1, description="Drop rows whose word 3-grams repeat more.")
    toxicity_max: float = Field(0.5, ge=0, le=1, description="Drop rows whose toxicity score is above this.")
    toxicity_scorer: str = Field("lexicon", description="Name of a registered toxicity scorer (llmft.plugins): "
                                                        "'lexicon' built in, more as the operator registers them.")

    @field_validator("toxicity_scorer")
    @classmethod
    def _registered_scorer(cls, value: str, info: ValidationInfo) -> str:
        from llmft import plugins

        return plugins.check("toxicity_scorer", value, origin(info))

    @model_validator(mode="after")
    def _bounds(self) -> "FilterSpec":
        if self.min_tokens > self.max_tokens:
            raise ValueError("min_tokens must not exceed max_tokens")
        return self


class DedupeSpec(StrictModel):
    exact: bool = Field(True, description="Drop exact duplicates (hash of normalised text) first.")
    near: bool = Field(True, description="Drop near duplicates with MinHash-LSH.")
    threshold: float = Field(0.8, gt=0, lt=1, description="Jaccard threshold; picks bands x rows when those are unset.")
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations.")
    ngram: int = Field(5, ge=1, le=32, description="Shingle size in words (word n-grams).")
    bands: int | None = Field(None, ge=1, description="LSH bands; with rows, overrides the threshold-derived choice.")
    rows: int | None = Field(None, ge=1, description="Rows per LSH band.")
    verify: Literal["exact", "estimate", "none"] = Field(
        "exact", description="How LSH candidates are verified before linking: exact (Jaccard of the two shingle "
                             "sets; bands designed for candidate recall near 1 at the threshold), estimate "
                             "(signature agreement, faster, errs near the threshold) or none. true/false mean "
                             "exact/none.")
    candidate_recall: float = Field(0.995, gt=0, lt=1, description="With exact verification and bands/rows unset: "
                                    "probability that a pair at exactly the threshold becomes a candidate.")
    local_max_rows: int = Field(250_000, ge=0, description="Inputs up to this many rows are deduplicated in one "
                                "process (one Ray task): below it Ray's fixed costs (hash shuffles) dominate.")
    seed: int = Field(1, description="MinHash permutation seed.")

    @field_validator("verify", mode="before")
    @classmethod
    def _verify_bool(cls, value: object) -> object:
        return ("exact" if value else "none") if isinstance(value, bool) else value

    @model_validator(mode="after")
    def _bands_rows(self) -> "DedupeSpec":
        if (self.bands is None) != (self.rows is None):
            raise ValueError("set both bands and rows, or neither")
        if self.bands is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands*rows ({self.bands * self.rows}) exceeds num_perm ({self.num_perm})")
        return self


class FormatSpec(StrictModel):
    style: Literal["alpaca", "chat"] = Field("chat", description="alpaca: prompt/completion; chat: messages.")
    prompt_field: str = Field("prompt", description="Source field holding the instruction.")
    response_field: str = Field("response", description="Source field holding the answer.")
    system_prompt: str | None = Field(None, description="Optional system message for chat records.")


class SplitSpec(StrictModel):
    train: float = Field(0.9, ge=0, le=1, description="Fraction of rows in the train split.")
    validation: float = Field(0.05, ge=0, le=1, description="Fraction in the validation split.")
    test: float = Field(0.05, ge=0, le=1, description="Fraction in the test split.")

    @model_validator(mode="after")
    def _sums_to_one(self) -> "SplitSpec":
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + validation + test must sum to 1 (got {total:g})")
        return self


class ReplaySpec(StrictModel):
    source: str | None = Field(None, description="Snapshot ref (or file) of a general-instruction set to mix in.")
    fraction: float = Field(0.0, ge=0, lt=1, description="Share of the train split drawn from the replay set.")


class CurationSpec(StrictModel):
    kind: Literal["curation"] = Field("curation", description="Spec type tag.")
    tenant: str = Field(..., pattern=NAME_PATTERN, description="Tenant that owns source and output.")
    source: str = Field(..., min_length=1, description="Source snapshot: `name`, `name:version` or a snapshot id.")
    output: str = Field(..., pattern=NAME_PATTERN, description="Name of the curated dataset to write.")
    tokenizer: str | None = Field(None, description="Base model ref whose tokenizer counts tokens and renders chat.")
    pii: PiiSpec = Field(default_factory=PiiSpec, description="PII detection and redaction.")
    filters: FilterSpec = Field(default_factory=FilterSpec, description="Quality filters.")
    dedupe: DedupeSpec = Field(default_factory=DedupeSpec, description="Exact and near-duplicate removal.")
    format: FormatSpec = Field(default_factory=FormatSpec, description="Instruction/chat formatting.")
    split: SplitSpec = Field(default_factory=SplitSpec, description="Deterministic train/validation/test split.")
    replay: ReplaySpec = Field(default_factory=ReplaySpec, description="General-data replay against forgetting.")
    erase_field: str | None = Field(None, description="Field naming the data subject, used by erasure.")

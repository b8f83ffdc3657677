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
    documents = "documents"  # PDF, HTML, DOCX, Markdown, text and source files (llmft.data.documents)


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
        default_factory=list, description="More dataset fields to scan: every text field that reaches training "
                                          "(prompt/response, instruction/input/output, each message's content, "
                                          "system) is always scanned unless listed in exclude.")
    exclude: list[str] = Field(default_factory=list, description="Dataset fields not scanned, even though they "
                                                                 "reach training (e.g. a code column).")
    not_pii: list[Literal["versions", "year_ranges", "doi", "arxiv", "special_ips", "urls", "paths"]] = Field(
        default_factory=lambda: ["versions", "year_ranges", "doi", "arxiv", "special_ips", "urls", "paths"],
        description="Technical look-alikes never reported: version numbers, year ranges (and times), DOIs, arXiv "
                    "ids, special-purpose IPs (loopback, documentation, reserved, multicast, network addresses), "
                    "URLs and file paths; the phone and generic-secret detectors do not fire inside them "
                    "(labelled secrets such as ?token=... still do). [] scans everything.")


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


FORMAT_FIELDS = ("prompt", "response", "instruction", "input", "output", "messages", "system", "id")


class FormatSpec(StrictModel):
    style: Literal["alpaca", "chat"] = Field("chat", description="How rows are rendered for training: alpaca "
                                             "(### Instruction/### Response text) or chat (the tokenizer's template).")
    input: Literal["auto", "prompt_response", "alpaca", "messages"] = Field(
        "auto", description="Row format of the dataset: prompt_response ({prompt, response}), alpaca ({instruction, "
                            "input?, output}), messages ({messages: [{role, content}, ...]} ending with the "
                            "assistant's answer), or auto (per row, from the fields it has).")
    fields: dict[str, str] = Field(
        default_factory=dict, description="Your field names for the format's: {prompt: question, response: answer}; "
                                          f"keys among {', '.join(FORMAT_FIELDS)}.")
    prompt_field: str = Field("prompt", description="Same as fields.prompt (kept for older specs).")
    response_field: str = Field("response", description="Same as fields.response (kept for older specs).")
    system_prompt: str | None = Field(None, description="System message for every row (a row's own system "
                                                        "message or `system` field wins); evaluation sends the same.")

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(FORMAT_FIELDS))
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(unknown)}: use {', '.join(FORMAT_FIELDS)}")
        return value

    @model_validator(mode="after")
    def _legacy_fields(self) -> "FormatSpec":
        for name, legacy in (("prompt", self.prompt_field), ("response", self.response_field)):
            if legacy != name and self.fields.get(name, legacy) != legacy:
                raise ValueError(f"{name}_field ({legacy!r}) and fields.{name} ({self.fields[name]!r}) disagree")
        return self

    def field_map(self) -> dict[str, str]:
        """Format name -> the dataset's field name."""
        legacy = {n: f for n, f in (("prompt", self.prompt_field), ("response", self.response_field)) if n != f}
        return {**{n: n for n in FORMAT_FIELDS}, **legacy, **self.fields}


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


class DocumentsSpec(StrictModel):
    """How a documents snapshot (format: documents) becomes rows: chunking, output, what a worker accepts."""

    chunk_tokens: int = Field(512, ge=8, le=1_000_000, description="Tokens per chunk (the tokenizer's tokens, or "
                              "whitespace-delimited words without one); at most filters.max_tokens.")
    overlap_tokens: int = Field(64, ge=0, description="Tokens a chunk shares with the one before it "
                                "(context across the cut); less than chunk_tokens.")
    output: Literal["text", "passages"] = Field(
        "text", description="text: continued-pretraining rows (empty prompt, the chunk plus eos as completion, so "
                            "the loss covers every token); passages: the chunks as they are, without eos, as the "
                            "source of an instruction-synthesis step.")
    max_file_bytes: int = Field(64 << 20, ge=1, description="Files larger than this are refused unread "
                                "(refused_too_large).")
    max_line_bytes: int = Field(1 << 20, ge=1, description="HTML, Markdown, text or code with a longer line is not "
                                "parsed (unreadable_<kind>:line_too_long): minified or hostile input.")
    max_unzipped_bytes: int = Field(256 << 20, ge=1, description="A DOCX whose members declare more uncompressed "
                                    "bytes is a zip bomb (unreadable_docx:zip_bomb), refused before unzipping.")
    max_zip_ratio: float = Field(100.0, gt=1, description="A DOCX (or any one member) that expands more than this "
                                 "many times is a zip bomb.")
    max_pages: int = Field(10_000, ge=1, description="PDFs with more pages are refused "
                           "(unreadable_pdf:too_many_pages).")

    @model_validator(mode="after")
    def _overlap(self) -> "DocumentsSpec":
        if self.overlap_tokens >= self.chunk_tokens:
            raise ValueError(f"overlap_tokens ({self.overlap_tokens}) must be less than chunk_tokens "
                             f"({self.chunk_tokens})")
        return self


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
    documents: DocumentsSpec = Field(default_factory=DocumentsSpec, description="Chunking and limits for a "
                                     "documents snapshot (format: documents); unused for row formats.")

    @model_validator(mode="after")
    def _chunk_fits(self) -> "CurationSpec":
        # only a documents section set here is checked: row-format specs with a small max_tokens stay valid
        if self.documents != DocumentsSpec() and self.documents.chunk_tokens > self.filters.max_tokens:
            raise ValueError(f"documents.chunk_tokens ({self.documents.chunk_tokens}) exceeds filters.max_tokens "
                             f"({self.filters.max_tokens}): every full chunk would be dropped as too_long")
        return self

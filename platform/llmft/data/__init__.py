"""Data stage: readers, PII redaction, quality filters, dedupe, formatting, splits, replay, erasure, snapshots.

The generated sample sets the demo and the tests use live in `llmft.demo`, above this stage."""

"""Data stage: readers, PII redaction, quality filters, dedupe, formatting, and the generated sample sets."""

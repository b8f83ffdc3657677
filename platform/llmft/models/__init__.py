"""Base models and tokenizers: resolution, identity, loading, and the built-in tiny model.

Importing this package is cheap: torch and transformers are imported inside the functions.
Resolving a base only looks (`resolve_base`); building the built-in one is explicit (`ensure_base`).
"""

from llmft.models.identity import model_identity
from llmft.models.loading import BUILTIN, load_base, load_tokenizer, resolve_base
from llmft.models.tiny import CHAT_TEMPLATE, TINY_NAME, build_tiny_base, ensure_base

__all__ = [
    "BUILTIN",
    "CHAT_TEMPLATE",
    "TINY_NAME",
    "build_tiny_base",
    "ensure_base",
    "load_base",
    "load_tokenizer",
    "model_identity",
    "resolve_base",
]

"""Resolve, identify and load base models and tokenizers from local directories.

The built-in `tiny` model goes through exactly the path a user's real model takes:
a directory with `config.json`, loaded by `AutoModelForCausalLM` / `AutoTokenizer`.
Nothing is ever fetched from a model hub.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmft.errors import IntegrityError, LlmftError, NotFoundError
from llmft.manifest import MANIFEST_NAME, read_manifest, verify_tree
from llmft.models.identity import model_identity

BUILTIN = ("tiny",)
_DTYPES = ("float32", "float16", "bfloat16")


def builtin_dir(name: str) -> Path:
    """Where a built-in base lives: under the configured models directory (LLMFT_HOME/storage/models)."""
    from llmft.settings import Settings

    return Settings.from_env().models_dir / name


def is_built(path: Path) -> bool:
    """A complete model directory: the manifest is written last, so its presence means the build finished."""
    return (path / "config.json").is_file() and (path / MANIFEST_NAME).is_file()


def resolve_base(ref: str | Path) -> Path:
    """A local model directory (must hold config.json), or a built-in name such as `tiny`.

    A built-in name wins over a same-named relative directory; write `./tiny` for the latter.
    Resolving only looks: it never builds. A built-in base that is not built yet raises
    NotFoundError; building it is an explicit call (`llmft.models.ensure_base`, `llmft models
    build-tiny`), so a curation or serving worker that only wants a tokenizer cannot end up
    pretraining a model.
    """
    text = str(ref)
    if isinstance(ref, str) and text in BUILTIN:
        path = builtin_dir(text)
        if not is_built(path):
            raise NotFoundError(f"base model '{text}' is not built yet (looked in {path}): run "
                                f"`llmft models build-tiny` or call llmft.models.ensure_base('{text}')")
        return path
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise NotFoundError(f"base model '{text}': directory {path} has no config.json")
        return path.resolve()
    raise NotFoundError(
        f"base model '{text}' not found: not a local model directory, nor a built-in name ({', '.join(BUILTIN)})"
    )


def _identity(path: Path, name: str | None, verify: bool) -> dict:
    """Recorded identity when a manifest exists (hashing a large model per load is costly); `verify` re-hashes."""
    if verify:
        manifest = verify_tree(path)
    elif (path / MANIFEST_NAME).is_file():
        manifest = read_manifest(path)
    else:
        return model_identity(path, name)
    return {"name": name or manifest.meta.get("name") or path.name, "sha256": manifest.digest,
            "files": len(manifest.files)}


def _torch_dtype(dtype: Any) -> Any:
    import torch

    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and dtype.removeprefix("torch.") in _DTYPES:
        return getattr(torch, dtype.removeprefix("torch."))
    raise LlmftError(f"dtype={dtype!r}: expected one of {', '.join(_DTYPES)}")


def _ensure_pad(tokenizer: Any) -> None:
    """Real base models often ship without a pad token; padding with eos is the usual choice."""
    if tokenizer.pad_token is not None:
        return
    fallback = tokenizer.eos_token or tokenizer.unk_token
    if fallback is None:
        raise LlmftError(f"tokenizer {tokenizer.name_or_path}: no pad, eos or unk token to pad with")
    tokenizer.pad_token = fallback


def load_tokenizer(ref: str | Path, *, padding_side: str = "right") -> Any:
    """`AutoTokenizer.from_pretrained` on the resolved directory, with a pad token and padding side set.

    transformers 5.23 does not save `padding_side`, so it is always set here: right for
    training, left for batched generation.
    """
    if padding_side not in ("left", "right"):
        raise LlmftError(f"padding_side={padding_side!r}: expected 'left' or 'right'")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_base(ref))
    _ensure_pad(tokenizer)
    tokenizer.padding_side = padding_side
    return tokenizer


def load_base(ref: str | Path, *, dtype: Any = None, padding_side: str = "right", device: Any = None,
              verify: bool = False, name: str | None = None) -> tuple[Any, Any, dict]:
    """(model, tokenizer, identity) through `AutoModelForCausalLM.from_pretrained`, as for any real model.

    `verify=True` re-hashes every file against manifest.json first and raises IntegrityError
    naming the first file that changed (or saying there is no manifest).
    """
    path = resolve_base(ref)
    identity = _identity(path, name or (str(ref) if str(ref) in BUILTIN else None), verify)
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(path, padding_side=padding_side)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=_torch_dtype(dtype))
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "generation_config", None) is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    if device is not None:
        model = model.to(device)
    model.eval()
    return model, tokenizer, identity


__all__ = ["BUILTIN", "IntegrityError", "builtin_dir", "is_built", "load_base", "load_tokenizer", "model_identity",
           "resolve_base"]

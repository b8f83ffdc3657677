"""Load and export registered versions: a PEFT adapter directory, or merged full weights.

Every path goes through the registry's verification first, and the base model's identity
is checked against the one the version was trained on, so a tampered adapter or a
swapped base is refused, naming what changed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from llmft.errors import ConflictError, IntegrityError
from llmft.manifest import MANIFEST_NAME, write_manifest

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")


def _empty_target(out: Path) -> Path:
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConflictError(f"{out}: already exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _load_checked_base(rec: Any, dtype: Any = None) -> tuple[Any, Any]:
    """The base model the version names, refused if its files are not the ones it was trained on."""
    from llmft.models.loading import load_base, resolve_base

    has_manifest = (resolve_base(rec.base_model) / MANIFEST_NAME).is_file()  # else identity hashes every file
    model, tokenizer, identity = load_base(rec.base_model, dtype=dtype, verify=has_manifest)
    if identity["sha256"] != rec.base_digest:
        raise IntegrityError(f"base model {rec.base_model!r} has digest {identity['sha256'][:12]}..., but "
                             f"{rec.ref} was trained on {rec.base_digest[:12]}...")
    return model, tokenizer


def load_version(registry: Any, tenant: str, ref: str, *, dtype: Any = None) -> tuple[Any, Any, Any]:
    """(model, tokenizer, record) of a verified version; adapters are applied to their checked base."""
    path, rec = registry.open(tenant, ref)
    kind = rec.lineage["artifacts"]["kind"]
    if kind == "full":
        from llmft.models.loading import load_base

        model, tokenizer, _ = load_base(path, dtype=dtype)
        return model, tokenizer, rec
    from peft import PeftModel

    base, tokenizer = _load_checked_base(rec, dtype)
    if (path / "tokenizer.json").is_file():  # the run's own tokenizer (e.g. added tokens) wins over the base's
        from transformers import AutoTokenizer

        own = AutoTokenizer.from_pretrained(path)
        own.pad_token = own.pad_token or tokenizer.pad_token
        own.padding_side = tokenizer.padding_side
        tokenizer = own
    model = PeftModel.from_pretrained(base, path)
    model.eval()
    return model, tokenizer, rec


def export_adapter(registry: Any, tenant: str, ref: str, out: Path | str) -> dict:
    """Copy a verified adapter to `out` (writable), ready for `PeftModel.from_pretrained(base, out)`."""
    path, rec = registry.open(tenant, ref)
    if rec.lineage["artifacts"]["kind"] != "adapter":
        raise ConflictError(f"{rec.ref} holds full weights, not an adapter; use the merged export")
    out = _empty_target(Path(out))
    for rel in rec.lineage["artifacts"]["files"]:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path / rel, out / rel)
    provenance = {"ref": rec.ref, "semver": rec.semver, "manifest_digest": rec.manifest_digest,
                  "base_model": rec.lineage["base_model"], "tenant": tenant}
    (out / "llmft_version.json").write_text(json.dumps(provenance, indent=2, sort_keys=True))
    return {"path": str(out), "kind": "adapter", **provenance}


def export_merged(registry: Any, tenant: str, ref: str, out: Path | str, *, dtype: Any = None) -> dict:
    """Merge the adapter into its base (`merge_and_unload`) and save safetensors + tokenizer to `out`."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConflictError(f"{out}: already exists and is not empty")
    model, tokenizer, rec = load_version(registry, tenant, ref, dtype=dtype)
    if rec.lineage["artifacts"]["kind"] == "adapter":
        model = model.merge_and_unload()
    out = _empty_target(out)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    for file in out.rglob("*"):  # safetensors writes 0600; serving processes must read it
        if file.is_file():
            file.chmod(0o644)
    meta = {"name": f"{rec.name}-{rec.semver}-merged", "source": rec.ref, "semver": rec.semver,
            "source_manifest_digest": rec.manifest_digest, "base_model": rec.lineage["base_model"]}
    manifest = write_manifest(out, meta)
    return {"path": str(out), "kind": "merged", "ref": rec.ref, "semver": rec.semver,
            "digest": manifest.digest, "files": sorted(manifest.files), "manifest": MANIFEST_NAME}

"""Document readers: PDF pages, HTML main text, DOCX and Markdown sections, source files, as text units.

A document becomes `Unit`s (a PDF page, a Markdown or DOCX section, an HTML page's main
text, a whole source file), each with its provenance: page, section, byte offset. A file
that cannot be read safely is one `BadDocument` reason (`unreadable_pdf:encrypted`,
`unreadable_docx:zip_bomb`, `unreadable_text:binary`, ...), never an exception out of
`parse`: one bad file in a million must not stop a curation job. The checks that protect
the worker (zip size and ratio, line length, file size) run before any parser sees the bytes.
Parsers: pypdf, python-docx, trafilatura, markdown-it-py; each imported where it is used.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from llmft.data.chunking import chunk_text
from llmft.data.readers import Provenance, RawRow

CODE_LANGUAGES = {
    ".py": "python", ".pyi": "python", ".js": "javascript", ".mjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".tsx": "typescript", ".java": "java", ".kt": "kotlin", ".scala": "scala",
    ".go": "go", ".rs": "rust", ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".hpp": "cpp",
    ".cs": "csharp", ".rb": "ruby", ".php": "php", ".swift": "swift", ".sh": "shell", ".bash": "shell",
    ".sql": "sql", ".r": "r", ".lua": "lua", ".pl": "perl", ".yaml": "yaml", ".yml": "yaml",
    ".toml": "toml", ".ini": "ini", ".cfg": "ini", ".proto": "protobuf", ".tf": "terraform",
}
KINDS = {".pdf": "pdf", ".html": "html", ".htm": "html", ".xhtml": "html", ".docx": "docx",
         ".md": "markdown", ".markdown": "markdown", ".txt": "text", ".text": "text", ".rst": "text",
         **{ext: "code" for ext in CODE_LANGUAGES}}
SPECIAL_NAMES = {"Dockerfile": "dockerfile", "Makefile": "make"}
# directories of other people's code, build output and tool caches: not the tenant's documents
VENDORED_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", "vendor", "third_party", "__pycache__", ".venv",
                           "venv", "site-packages", ".tox", ".mypy_cache", ".pytest_cache", "dist", "build",
                           ".idea", ".vscode"})
SKIP_NAMES = frozenset({"manifest.json", "report.json", "report.html"})
BAD_PREFIXES = ("unreadable_", "refused_")  # every reason this module gives starts with one (or is empty_file)


@dataclass(frozen=True)
class Limits:
    """What a worker accepts before parsing (the DocumentsSpec fields of the same names)."""

    max_file_bytes: int = 64 << 20
    max_line_bytes: int = 1 << 20
    max_unzipped_bytes: int = 256 << 20
    max_zip_ratio: float = 100.0
    max_pages: int = 10_000


@dataclass(frozen=True)
class Unit:
    """One piece of a document's text: a page, a section or a whole file.

    `offset` is the byte offset of the unit in the file for text formats (Markdown, code,
    text; `offset_of` = "file") and 0 for formats whose text is extracted (PDF, DOCX, HTML;
    `offset_of` = "text": chunk offsets then count bytes of the unit's extracted text).
    """

    text: str
    index: int  # 1-based: page number, section number, or 1 for a whole file
    page: int | None = None
    section: str | None = None
    offset: int = 0
    offset_of: str = "file"


class BadDocument(Exception):
    """A file that is counted, not parsed: `reason` is the curation report's key."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Listing:
    files: list[Path]  # supported files, sorted
    refused: list[dict] = field(default_factory=list)  # [{"file": rel, "reason": ...}] never read
    skipped: Counter = field(default_factory=Counter)  # unsupported types, vendored directories


def kind_of(name: str) -> str | None:
    """pdf / html / docx / markdown / text / code, or None for a file type no reader takes."""
    if name in SPECIAL_NAMES:
        return "code"
    return KINDS.get(PurePosixPath(name).suffix.lower())


def language_of(name: str) -> str | None:
    return SPECIAL_NAMES.get(name) or CODE_LANGUAGES.get(PurePosixPath(name).suffix.lower())


def list_documents(root: Path, limits: Limits = Limits()) -> Listing:
    """The readable documents under `root` (walked without following links), plus what was refused.

    A symlink (to a file or a directory, pointing anywhere) is never followed: it is refused as
    `refused_symlink`, because following it could read outside the tenant's snapshot. A file
    above `max_file_bytes` is refused as `refused_too_large` without being opened.
    """
    root = Path(root)
    if root.is_symlink():
        return Listing([], [{"file": root.name, "reason": "refused_symlink"}])
    if root.is_file():
        return Listing([root] if kind_of(root.name) else [], [], Counter() if kind_of(root.name)
                       else Counter(unsupported_type=1))
    out = Listing([])
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel_dir = Path(dirpath).relative_to(root)
        keep = []
        for d in sorted(dirnames):
            if (Path(dirpath) / d).is_symlink():  # os.walk lists a linked directory but does not enter it
                out.refused.append({"file": (rel_dir / d).as_posix(), "reason": "refused_symlink"})
            elif d in VENDORED_DIRS or d.startswith(".staging-"):
                out.skipped["vendored_dir"] += 1
            else:
                keep.append(d)
        dirnames[:] = keep
        for name in filenames:
            path, rel = Path(dirpath) / name, (rel_dir / name).as_posix()
            if path.is_symlink():
                out.refused.append({"file": rel, "reason": "refused_symlink"})
            elif name in SKIP_NAMES and rel_dir == Path("."):
                continue
            elif not kind_of(name) or not path.is_file():
                out.skipped["unsupported_type"] += 1
            elif path.stat().st_size > limits.max_file_bytes:
                out.refused.append({"file": rel, "reason": "refused_too_large"})
            else:
                out.files.append(path)
    out.files.sort()
    out.refused.sort(key=lambda r: r["file"])
    return out


def parse(name: str, data: bytes, limits: Limits = Limits()) -> list[Unit]:
    """The text units of one file (`name` picks the reader); raises only BadDocument."""
    kind = kind_of(PurePosixPath(name).name)
    if kind is None:
        raise BadDocument("unreadable_file:unsupported_type")
    if len(data) > limits.max_file_bytes:
        raise BadDocument("refused_too_large")
    if not data.strip():
        raise BadDocument("empty_file")
    try:
        units = _READERS[kind](data, limits)
    except BadDocument:
        raise
    except RecursionError:
        raise BadDocument(f"unreadable_{kind}:too_deeply_nested") from None
    except Exception:  # noqa: BLE001 - a parser's failure on one file is that file's reason, not a crash
        raise BadDocument(f"unreadable_{kind}:corrupt") from None
    units = [u for u in units if u.text.strip()]
    if not units:
        raise BadDocument(f"unreadable_{kind}:no_text")
    return units


def _decode(data: bytes, kind: str, limits: Limits) -> str:
    """UTF-8 text of a text-format file; NUL bytes mean a binary file under a text name."""
    if b"\x00" in data:
        raise BadDocument(f"unreadable_{kind}:binary")
    if _longest_line(data) > limits.max_line_bytes:
        raise BadDocument(f"unreadable_{kind}:line_too_long")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadDocument(f"unreadable_{kind}:not_utf8") from None


def _longest_line(data: bytes) -> int:
    longest, start = 0, 0
    while True:
        end = data.find(b"\n", start)
        longest = max(longest, (len(data) if end < 0 else end) - start)
        if end < 0:
            return longest
        start = end + 1


def _pdf(data: bytes, limits: Limits) -> list[Unit]:
    import logging

    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # a broken xref is this file's reason, not a log line
    reader = PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted:  # even an empty user password: the owner chose to restrict it
        raise BadDocument("unreadable_pdf:encrypted")
    if len(reader.pages) > limits.max_pages:
        raise BadDocument("unreadable_pdf:too_many_pages")
    return [Unit(page.extract_text() or "", index=i, page=i, offset_of="text")
            for i, page in enumerate(reader.pages, start=1)]


def _check_zip(data: bytes, limits: Limits) -> None:
    """Refuse a zip bomb from the central directory alone (declared sizes; zipfile enforces them on read)."""
    try:
        infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except zipfile.BadZipFile:
        raise BadDocument("unreadable_docx:corrupt") from None
    total = sum(i.file_size for i in infos)
    packed = max(1, sum(i.compress_size for i in infos))
    worst = max((i.file_size / max(1, i.compress_size) for i in infos), default=0.0)
    if total > limits.max_unzipped_bytes or total / packed > limits.max_zip_ratio or worst > limits.max_zip_ratio:
        raise BadDocument("unreadable_docx:zip_bomb")


def _docx(data: bytes, limits: Limits) -> list[Unit]:
    _check_zip(data, limits)
    import docx
    from docx.table import Table

    document = docx.Document(io.BytesIO(data))
    units: list[Unit] = []
    path: list[str] = []
    lines: list[str] = []

    def close() -> None:
        if any(line.strip() for line in lines):
            units.append(Unit("\n".join(lines).strip(), index=len(units) + 1, section=" > ".join(path) or None,
                              offset_of="text"))
        lines.clear()

    for block in document.iter_inner_content():
        if isinstance(block, Table):
            lines.extend(" | ".join(c.text.strip() for c in row.cells) for row in block.rows)
            continue
        style = (block.style.name if block.style is not None else "") or ""
        level = _heading_level(style)
        if level and block.text.strip():
            close()
            path[:] = path[:level - 1] + [block.text.strip()]
        else:
            lines.append(block.text)
    close()
    return units


def _heading_level(style: str) -> int:
    if style == "Title":
        return 1
    m = re.fullmatch(r"Heading (\d)", style)
    return int(m.group(1)) if m else 0


def _html(data: bytes, limits: Limits) -> list[Unit]:
    if _longest_line(data) > limits.max_line_bytes:
        raise BadDocument("unreadable_html:line_too_long")
    if b"\x00" in data:
        raise BadDocument("unreadable_html:binary")
    import trafilatura

    text = trafilatura.extract(data, include_comments=False, include_tables=True, deduplicate=False)
    if not text:
        return []
    meta = trafilatura.extract_metadata(data)
    return [Unit(text, index=1, section=getattr(meta, "title", None) or None, offset_of="text")]


def _markdown(data: bytes, limits: Limits) -> list[Unit]:
    """Sections by heading (ATX or setext, never inside code fences), `A > B` as the section path."""
    from markdown_it import MarkdownIt

    text = _decode(data, "markdown", limits)
    lines = text.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line.encode("utf-8")))
    tokens = MarkdownIt("commonmark").parse(text)
    heads = [(tok.map[0], int(tok.tag[1]), tokens[i + 1].content.strip())
             for i, tok in enumerate(tokens) if tok.type == "heading_open" and tok.map]
    bounds = ([(0, None, None)] if not heads or heads[0][0] > 0 else []) + heads
    units: list[Unit] = []
    path: list[str] = []
    for n, (line_no, level, title) in enumerate(bounds):
        end = bounds[n + 1][0] if n + 1 < len(bounds) else len(lines)
        if level:
            path[:] = path[:level - 1] + [title]
        body = "".join(lines[line_no:end])
        if body.strip():
            units.append(Unit(body, index=len(units) + 1, section=" > ".join(path) or None,
                              offset=_bom(data) + starts[line_no]))
    return units


def _plain(kind: str):
    def read(data: bytes, limits: Limits) -> list[Unit]:
        return [Unit(_decode(data, kind, limits), index=1, offset=_bom(data))]
    return read


def _bom(data: bytes) -> int:
    return 3 if data.startswith(b"\xef\xbb\xbf") else 0


_READERS = {"pdf": _pdf, "docx": _docx, "html": _html, "markdown": _markdown, "text": _plain("text"),
            "code": _plain("code")}


def count(root: Path, limits: Limits = Limits()) -> tuple[int, Counter]:
    """(units, bad files by reason) of a directory, parsed in this process (small sources, tests)."""
    listing = list_documents(root, limits)
    good, bad = 0, Counter(r["reason"] for r in listing.refused)
    for path in listing.files:
        try:
            good += len(parse(path.name, path.read_bytes(), limits))
        except BadDocument as exc:
            bad[exc.reason] += 1
    return good, bad


def read_document(rel: str, data: bytes, prov: Provenance, *, chunk_tokens: int, overlap_tokens: int,
                  tokenizer: Any = None, limits: Limits = Limits()) -> list[RawRow]:
    """Chunk rows of one file (`record.text` + provenance), or one row naming why the file was not read.

    `source_line` is the page (PDF) or section number (1 for a whole file); the record keeps
    `kind`, `page`, `section`, `chunk` (0-based within the unit), `tokens`, `byte_offset`
    and `offset_of` ("file": bytes into the file; "text": bytes into the unit's extracted text).
    """
    try:
        units = parse(rel, data, limits)
    except BadDocument as exc:
        return [RawRow(None, rel, 0, prov, exc.reason)]
    name = PurePosixPath(rel).name
    kind = kind_of(name)
    extra = {"language": language_of(name)} if kind == "code" else {}
    out = []
    for u in units:
        for n, c in enumerate(chunk_text(u.text, chunk_tokens, overlap_tokens, tokenizer)):
            record = {"id": f"{rel}#{u.index}.{n}", "text": c.text, "kind": kind, "page": u.page,
                      "section": u.section, "chunk": n, "tokens": c.tokens, "byte_offset": u.offset + c.byte_start,
                      "offset_of": u.offset_of, **extra}
            out.append(RawRow(record, rel, u.index, prov))
    return out

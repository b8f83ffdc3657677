"""Document fixtures, built by the real libraries in the test session: PDFs (fpdf2, pypdf), DOCX (python-docx),
HTML, Markdown and a small code tree, plus the bad inputs the readers must count (never crash on)."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

REFUND = ("Customers may return any product within thirty days of delivery for a full refund. "
          "Refunds are paid to the original payment method within five business days. ")

PAGE_ONE = ("Refund policy. A damaged parcel is photographed on arrival and reported through the portal; the "
            "carrier collects it at no charge and the replacement leaves the warehouse the following morning. "
            "Gift cards, downloadable software and opened hygiene products cannot be sent back.")
PAGE_TWO = ("Exchanges. Shoes and clothing may be swapped for another size or colour once, free of charge, as "
            "long as the labels are still attached. Store credit never expires and can be combined with coupons.")


def pdf_bytes(pages: list[str]) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    return bytes(pdf.output())


def encrypted_pdf_bytes(pages: list[str]) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes(pages))))
    writer.encrypt("owner-only-secret")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def docx_bytes(sections: list[tuple[int, str, str]]) -> bytes:
    """(heading level, heading, paragraph) per section; a two-cell table after the last paragraph."""
    import docx

    document = docx.Document()
    for level, heading, body in sections:
        document.add_heading(heading, level)
        document.add_paragraph(body)
    table = document.add_table(rows=1, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "plan", "monthly"
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def zip_bomb_docx(unzipped_mb: int = 64) -> bytes:
    """A .docx-named zip whose document part expands ~1000x (zeros deflate to almost nothing)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", b"\0" * (unzipped_mb << 20))
    return out.getvalue()


def html_bytes(title: str, body: str) -> bytes:
    nav = "".join(f"<li><a href='/{w}'>{w}</a></li>" for w in ("Home", "Products", "Pricing", "Careers", "Login"))
    return (f"<!doctype html><html><head><title>{title}</title></head><body>"
            f"<header><ul class='nav'>{nav}</ul></header>"
            f"<main><article><h1>{title}</h1><p>{body}</p><p>{body}</p></article></main>"
            f"<footer><p>Copyright 2026 Example Corp. All rights reserved. Privacy | Terms | Cookies</p></footer>"
            f"</body></html>").encode()


MARKDOWN = (b"# Support handbook\n\nHow the support team works.\n\n"
            b"## Escalation\n\nEscalate outages to the on-call engineer within fifteen minutes.\n\n"
            b"```\n# not a heading inside a fence\n```\n\n"
            b"## Refunds\n\n" + REFUND.encode() + b"\n")
CODE = b'"""Billing helpers."""\n\n\ndef prorate(amount: float, days: int, period: int = 30) -> float:\n' \
       b'    """The share of `amount` for `days` of a `period`-day cycle."""\n    return amount * days / period\n'


def write_corpus(root: Path, outside: Path) -> dict:
    """A directory of mixed documents, good and bad; returns what the readers must make of it."""
    root.mkdir(parents=True)
    (root / "manuals").mkdir()
    (root / "manuals" / "refunds.pdf").write_bytes(pdf_bytes([PAGE_ONE, PAGE_TWO]))
    (root / "manuals" / "locked.pdf").write_bytes(encrypted_pdf_bytes(["Confidential price list for partners."]))
    (root / "manuals" / "broken.pdf").write_bytes(pdf_bytes(["A page that is cut short."])[:300])
    (root / "policies.docx").write_bytes(docx_bytes([
        (1, "Travel policy", "Book economy class for flights shorter than six hours, business class above. "
                             "Questions go to travel.desk@example.com before booking."),
        (2, "Expenses", "Submit receipts within thirty days; meals are reimbursed up to fifty euros a day.")]))
    (root / "bomb.docx").write_bytes(zip_bomb_docx())
    (root / "web").mkdir()
    faq = "Orders ship within two business days from our warehouse in Rotterdam and arrive in three to five days."
    (root / "web" / "faq.html").write_bytes(html_bytes("Shipping FAQ", faq))
    (root / "web" / "minified.html").write_bytes(b"<html><body><p>" + b"tok " * (300 << 10) + b"</p></body></html>")
    (root / "handbook.md").write_bytes(MARKDOWN)
    (root / "notes.txt").write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)) * 4)
    (root / "src").mkdir()
    (root / "src" / "billing.py").write_bytes(CODE)
    (root / "src" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (root / "src" / "node_modules" / "left-pad").mkdir(parents=True)
    (root / "src" / "node_modules" / "left-pad" / "index.js").write_bytes(b"module.exports = leftPad;\n")
    outside.mkdir(parents=True, exist_ok=True)
    (outside / "secrets.md").write_bytes(b"# Other tenant\n\nPayroll of another tenant.\n")
    os.symlink(outside / "secrets.md", root / "secrets.md")
    os.symlink(outside, root / "linked-dir")
    return {
        "good": {"manuals/refunds.pdf", "policies.docx", "web/faq.html", "handbook.md", "src/billing.py"},
        "bad": {"manuals/locked.pdf": "unreadable_pdf:encrypted", "manuals/broken.pdf": "unreadable_pdf:corrupt",
                "bomb.docx": "unreadable_docx:zip_bomb", "web/minified.html": "unreadable_html:line_too_long",
                "notes.txt": "unreadable_text:binary", "secrets.md": "refused_symlink",
                "linked-dir": "refused_symlink"},
        "secret": "Payroll of another tenant",
    }


@pytest.fixture
def docs():
    """The document builders, for tests that make their own files."""
    return SimpleNamespace(pdf=pdf_bytes, encrypted_pdf=encrypted_pdf_bytes, docx=docx_bytes, zip_bomb=zip_bomb_docx,
                           html=html_bytes, markdown=MARKDOWN, code=CODE, refund=REFUND, write_corpus=write_corpus)

"""Load stage: a file -> `SourceDoc` (raw text, content hash, pages where the source has them).

Text and Markdown are read as UTF-8; PDFs through pypdf, page by page; HTML through
BeautifulSoup with scripts, styles and navigation removed. Anything that cannot be read as a
report raises `UnreadableFileError` with the reason, and the ingest skips it; so does a report
longer than the character cap (`Settings.max_file_chars`), told from its size on disk alone
where that is enough.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections import Counter
from pathlib import Path

from advisor.corpus import SUPPORTED_SUFFIXES
from advisor.errors import UnreadableFileError
from advisor.text import FUSED_HEADER as _FUSED_HEADER
from advisor.text import normalise_space
from advisor.types import DocumentInfo, SourceDoc

MAX_BYTES = 50 * 1024 * 1024
_TEXT_SUFFIXES = (".txt", ".md", ".markdown")
# UTF-8 spends at most 4 bytes on a character (3 more on a byte-order mark), so a text file of
# more bytes than this is over the cap whatever it holds. HTML markup and PDF streams say
# nothing about the length of the text inside: those are measured after extraction.
_MAX_BYTES_PER_CHAR = 4


def check_size(path: Path, max_chars: int | None = None) -> None:
    """Raise UnreadableFileError when a file's size on disk alone rules it out, before it is read."""
    try:
        size = Path(path).stat().st_size
    except OSError as exc:
        raise UnreadableFileError(f"cannot be read: {exc.strerror or exc}") from exc
    if size > MAX_BYTES:
        raise UnreadableFileError(f"too large ({size // 1_000_000} MB; the limit is 50 MB)")
    if (
        max_chars is not None
        and Path(path).suffix.lower() in _TEXT_SUFFIXES
        and size > _MAX_BYTES_PER_CHAR * max_chars + 3
    ):
        raise UnreadableFileError(
            f"too long: {size:,} bytes of text, so more than the limit of {max_chars:,} characters "
            "(ADVISOR_MAX_FILE_CHARS)"
        )


def _too_long(chars: int, max_chars: int, where: str = "") -> UnreadableFileError:
    return UnreadableFileError(
        f"too long: {chars:,} characters of text{where}, over the limit of {max_chars:,} "
        "(ADVISOR_MAX_FILE_CHARS)"
    )


def load_document(path: Path, info: DocumentInfo, max_chars: int | None = None) -> SourceDoc:
    """Read one report file of at most `max_chars` characters of text (None: any length up to
    MAX_BYTES), or raise UnreadableFileError saying why it cannot be used."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnreadableFileError(
            f"unsupported file type {suffix or '(none)'}; supported: {', '.join(SUPPORTED_SUFFIXES)}"
        )
    check_size(path, max_chars)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UnreadableFileError(f"cannot be read: {exc.strerror or exc}") from exc
    if not raw.strip():
        raise UnreadableFileError("the file is empty")
    content_hash = hashlib.sha256(raw).hexdigest()
    if suffix == ".pdf":
        text, pages = _pdf_text(raw, max_chars)
    else:
        text = _decode(raw)
        if suffix in (".html", ".htm"):
            text = _html_text(text)
        pages = _printed_pages(text)
    if not text.strip():
        raise UnreadableFileError("no text could be extracted")
    if max_chars is not None and len(text) > max_chars:
        raise _too_long(len(text), max_chars)
    return SourceDoc(info=info, text=text, content_hash=content_hash, pages=tuple(pages))


def _printed_pages(text: str) -> list[tuple[int, int]]:
    """(page, offset) where a running header fused with its page number heads a page.

    PDF extractions keep such headers on only some pages (11 of 100 in the Nuffield
    report), so these are anchors, not every page start; the chunker estimates between them.
    """
    found: list[tuple[int, str, int]] = []
    offset = 0
    for line in text.split("\n"):
        m = _FUSED_HEADER.match(line.strip())
        if m:
            found.append((int(m.group(1)), m.group(2).strip(), offset))
        offset += len(line) + 1
    phrases = Counter(phrase for _, phrase, _ in found)
    pages: list[tuple[int, int]] = []
    for number, phrase, at in found:
        # a recurring header with rising numbers; anything else is ordinary text
        if phrases[phrase] >= 3 and (not pages or number > pages[-1][0]):
            pages.append((number, at))
    return pages if len(pages) >= 2 else []


def _decode(raw: bytes) -> str:
    if b"\x00" in raw[:4096]:
        raise UnreadableFileError("looks like a binary file, not text (it contains NUL bytes)")
    for encoding in ("utf-8-sig",):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise UnreadableFileError(
                f"not UTF-8 text (undecodable byte at position {exc.start}); save it as UTF-8"
            ) from None
    controls = sum(1 for ch in text[:20000] if ord(ch) < 32 and ch not in "\n\r\t\f")
    if controls > max(10, len(text[:20000]) // 100):
        raise UnreadableFileError("looks like a binary file, not text (too many control characters)")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _pdf_text(raw: bytes, max_chars: int | None = None) -> tuple[str, list[tuple[int, int]]]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted:
            try:
                if not reader.decrypt(""):
                    raise UnreadableFileError("the PDF is encrypted (password protected)")
            except UnreadableFileError:
                raise
            except Exception as exc:
                raise UnreadableFileError(f"the PDF is encrypted and cannot be opened: {exc}") from exc
        parts: list[str] = []
        pages: list[tuple[int, int]] = []
        offset = 0
        for number, page in enumerate(reader.pages, start=1):
            page_text = (page.extract_text() or "").strip("\n")
            pages.append((number, offset))
            parts.append(page_text)
            offset += len(page_text) + 2
            if max_chars is not None and offset - 2 > max_chars:  # stop: the rest cannot help
                raise _too_long(offset - 2, max_chars, f" by page {number} of {len(reader.pages)}")
    except UnreadableFileError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise UnreadableFileError(f"not a readable PDF ({type(exc).__name__}: {exc})") from exc
    except Exception as exc:  # pypdf raises a wide range of errors on damaged files
        raise UnreadableFileError(f"not a readable PDF ({type(exc).__name__}: {exc})") from exc
    return "\n\n".join(parts), pages


def _html_text(html: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "nav", "header", "footer", "noscript", "template", "svg", "form"]):
        tag.decompose()
    blocks = []
    for element in soup.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "blockquote", "td", "pre"]):
        if element.find(["p", "li", "h1", "h2", "h3", "h4", "blockquote"]):
            continue  # a container: its children are taken instead
        text = normalise_space(element.get_text(" ", strip=True))
        if not text:
            continue
        if element.name == "li":
            text = f"- {text}"
        blocks.append(text)
    if not blocks:
        blocks = [re.sub(r"\s+", " ", soup.get_text(" ", strip=True))]
    return "\n\n".join(blocks)

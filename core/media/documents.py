"""Documents: PDF text (pypdf, with OCR of scanned pages) and plain text, Markdown, CSV.

A PDF's pages are read until the text budget, the page limit or the deadline is reached, and the text says
what was left out. pypdf is pure Python and cannot be interrupted, and one page can keep it busy far
past any deadline (a few kilobytes of nested forms or compressed operators are minutes of parsing), so
a PDF is read in a child process (`core.media.pdf_worker`) that is killed at the backstop: a thread
could only be abandoned, burning a core long after the person was told the file timed out.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.media.config import MediaConfig
from core.media.errors import Unreadable
from core.media.images import ocr_bytes
from core.media.proc import ToolFailed, run_tool
from core.media.sniff import decode_text
from core.media.text import trim_text

if TYPE_CHECKING:
    from pypdf import PdfReader

log = logging.getLogger(__name__)

SCANNED_OCR_PAGES = 10
"""A PDF without a text layer has at most this many page images read by OCR."""


def read_text(data: bytes, config: MediaConfig) -> str:
    """Plain text, Markdown or CSV, decoded and trimmed to the budget."""
    text = decode_text(data)
    if text is None:
        raise Unreadable("not a text file")
    text = text.replace("\r\n", "\n").replace("\r", "\n").removeprefix("\ufeff")
    if not text.strip():
        raise Unreadable("no text in file")
    return trim_text(text, config.limits.max_document_chars)


async def read_pdf(data: bytes, config: MediaConfig) -> str:
    """The text of a PDF, read in a child process. Raises Unreadable ('corrupt PDF', 'encrypted PDF', ...)
    or TimeoutError (the child is killed then)."""
    from core.media import pdf_worker  # not at import: `python -m` runs it, and the package imports this module

    backstop = config.timeouts.pdf_s + config.timeouts.ocr_s + pdf_worker.STARTUP_S
    try:
        out = await run_tool(pdf_worker.command(config), stdin=data, timeout_s=backstop, env=pdf_worker.environment())
    except ToolFailed as exc:
        log.warning("pdf reader failed: %s", exc)
        raise Unreadable("corrupt PDF") from exc
    return pdf_worker.answer(out)


def read_pdf_here(data: bytes, config: MediaConfig) -> str:
    """The text of a PDF, read in this process by the deadline between pages (the child's half)."""
    return _read_pdf(data, config, time.monotonic() + config.timeouts.pdf_s)


@dataclass(frozen=True, kw_only=True, slots=True)
class _Pages:
    texts: list[str]
    read: int
    total: int
    out_of_time: bool


def _read_pdf(data: bytes, config: MediaConfig, deadline: float) -> str:
    reader = _open_pdf(data)
    try:
        total = len(reader.pages)
    except Exception as exc:
        raise Unreadable("corrupt PDF") from exc
    if total == 0:
        raise Unreadable("PDF has no pages")
    pages = _extract_text(reader, total, config, deadline)
    if not "".join(pages.texts).strip():
        pages = _ocr_scanned(reader, total, config, deadline)
    text = "\n\n".join(t for t in pages.texts if t.strip())
    if not text.strip():
        raise Unreadable("no text found in PDF")
    return _with_notes(trim_text(text, config.limits.max_document_chars), pages)


def _open_pdf(data: bytes) -> PdfReader:
    """The PDF, decrypted if it opens with an empty password. pypdf (with Pillow) is imported here, on
    the first document, not by every process that only might read one."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, EmptyFileError, FileNotDecryptedError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
    except EmptyFileError as exc:
        raise Unreadable("empty file") from exc
    except (FileNotDecryptedError, DependencyError) as exc:
        raise Unreadable("encrypted PDF") from exc
    except Exception as exc:
        raise Unreadable("corrupt PDF") from exc
    if reader.is_encrypted:
        try:
            opened = reader.decrypt("")  # many PDFs are encrypted with an empty user password
        except Exception as exc:
            raise Unreadable("encrypted PDF") from exc
        if not opened:
            raise Unreadable("encrypted PDF")
    return reader


def _extract_text(reader: PdfReader, total: int, config: MediaConfig, deadline: float) -> _Pages:
    from pypdf.errors import DependencyError, FileNotDecryptedError

    budget = config.limits.max_document_chars
    limit = min(total, config.limits.max_pdf_pages)
    texts: list[str] = []
    size = 0
    read = 0
    while read < limit and size <= budget:
        if time.monotonic() > deadline:
            return _Pages(texts=texts, read=read, total=total, out_of_time=True)
        try:
            page_text = reader.pages[read].extract_text()
        except (FileNotDecryptedError, DependencyError) as exc:
            raise Unreadable("encrypted PDF") from exc
        except Exception:
            log.info("pdf page %d unreadable", read + 1, exc_info=True)
            page_text = ""
        texts.append(page_text)
        size += len(page_text)
        read += 1
    return _Pages(texts=texts, read=read, total=total, out_of_time=False)


def _ocr_scanned(reader: PdfReader, total: int, config: MediaConfig, deadline: float) -> _Pages:
    """Scanned PDFs are page images: read the images of the first pages with tesseract."""
    limit = min(total, config.limits.max_pdf_pages, SCANNED_OCR_PAGES)
    texts: list[str] = []
    read = 0
    while read < limit:
        if time.monotonic() > deadline:
            return _Pages(texts=texts, read=read, total=total, out_of_time=True)
        texts.append("\n".join(_page_image_texts(reader, read, config)))
        read += 1
    return _Pages(texts=texts, read=read, total=total, out_of_time=False)


def _page_image_texts(reader: PdfReader, index: int, config: MediaConfig) -> list[str]:
    out: list[str] = []
    try:
        page = reader.pages[index]
        image_names = page.images.keys()  # iterating page.images itself would decode every image
        names = [name for name in image_names if isinstance(name, str)]
        xobjects = page["/Resources"].get_object()["/XObject"].get_object()  # type: ignore[index]
    except Exception:
        log.info("pdf page %d images unreadable", index + 1, exc_info=True)
        return out
    for name in names:
        try:
            info = xobjects[name].get_object()
            if int(info["/Width"]) * int(info["/Height"]) > config.limits.max_image_pixels:
                continue  # checked before pypdf decodes the pixels
            out.append(ocr_bytes(page.images[name].data, config))
        except Unreadable:
            continue
        except Exception:
            log.info("pdf page %d image %s unreadable", index + 1, name, exc_info=True)
    return out


def _with_notes(text: str, pages: _Pages) -> str:
    unread = pages.total - pages.read
    if unread <= 0:
        return text
    why = "time limit reached" if pages.out_of_time else "page or text limit reached"
    return f"{text}\n[... {unread:,} more pages not read: {why}]"

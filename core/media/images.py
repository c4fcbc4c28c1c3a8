"""Images: the text in them (tesseract) and a clean copy for vision models.

Pixels are counted from the header before anything is decoded, so a small file that expands to
gigabytes is refused cheaply; and however many images arrive at once (in one turn or across turns),
at most `DECODING_BUDGET_PIXELS` are decoded at a time: the rest wait their turn, briefly. The copy
for the model is re-encoded, which drops EXIF (camera GPS positions are personal data) and applies
the camera's rotation, which OCR needs as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import io
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import pytesseract
from PIL import Image, ImageOps

from core.media.config import MediaConfig
from core.media.errors import Unreadable

_UPSCALE_BELOW = 1000
"""Tesseract misses small screen text; images whose longer side is shorter are read at twice the size."""
_JPEG_QUALITY = 90
DECODING_BUDGET_PIXELS = 50_000_000
"""Pixels decoded at once in this process: one image of the largest size allowed (with the copies OCR
and the vision model need, about 7 bytes a pixel: 350 MB), or many small ones."""
_IMAGE_THREADS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="parley-image")
MAX_JPEG_SCANS = 100
"""A progressive JPEG has about ten scans, and libjpeg passes over every block of the image for each one,
even a scan of two bytes: 40,000 empty scans of a 16-megapixel image (half a megabyte) are 29 s of a core
in a thread no timeout can stop. An SOS marker cannot occur unescaped in coded data, so counting its bytes
counts scans (an embedded thumbnail's add a few). libtiff refuses a JPEG-compressed strip past the same
100 scans itself."""
_JPEG_SCAN = b"\xff\xda"


@dataclass(frozen=True, kw_only=True, slots=True)
class ImageText:
    text: str
    """Text found by OCR; empty when the image holds none."""
    image: bytes
    media_type: str


async def read_image(data: bytes, config: MediaConfig) -> ImageText:
    """OCR `data` and prepare the model's copy. Raises Unreadable or TimeoutError. Runs on the image
    threads, so images waiting for the decoding budget never hold the threads everything else uses."""
    timeout = config.timeouts.ocr_s
    work = asyncio.get_running_loop().run_in_executor(_IMAGE_THREADS, _read_image, data, config)
    return await asyncio.wait_for(work, timeout=timeout + 1)


def _read_image(data: bytes, config: MediaConfig) -> ImageText:
    header = _header(data, max_pixels=config.limits.max_image_pixels)
    with DECODING.hold(header.width * header.height, timeout_s=config.timeouts.ocr_s):
        image, source_format = _decode(header)
        text = _ocr(_flatten(image), languages=config.ocr_languages, timeout_s=config.timeouts.ocr_s)
        try:
            # Last: the decoded image is not needed at full size after this, so it may shrink in place.
            copy, media_type = _vision_copy(image, as_jpeg=source_format == "JPEG", max_side=config.vision_max_side)
        except (OSError, ValueError) as exc:
            raise Unreadable(f"unsupported image mode {image.mode}") from exc
    return ImageText(text=text, image=copy, media_type=media_type)


def ocr_bytes(data: bytes, config: MediaConfig) -> str:
    """OCR text of an encoded image (a page of a scanned PDF); blocking, run it in a thread."""
    header = _header(data, max_pixels=config.limits.max_image_pixels)
    with DECODING.hold(header.width * header.height, timeout_s=config.timeouts.ocr_s):
        image, _ = _decode(header)
        return _ocr(_flatten(image), languages=config.ocr_languages, timeout_s=config.timeouts.ocr_s)


class PixelBudget:
    """A process-wide bound on pixels being decoded at once, shared by the worker threads that decode.
    An image larger than the whole budget waits until it has it to itself; a wait longer than
    `timeout_s` ends in a clear error rather than a queue that grows without bound."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_use = 0
        self._changed = threading.Condition()

    @contextmanager
    def hold(self, pixels: int, *, timeout_s: float) -> Iterator[None]:
        wanted = min(pixels, self.capacity)
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self.in_use + wanted > self.capacity:
                left = deadline - time.monotonic()
                if left <= 0 or not self._changed.wait(left):
                    raise Unreadable("too many images are being read at once; send this one again in a moment")
            self.in_use += wanted
        try:
            yield
        finally:
            with self._changed:
                self.in_use -= wanted
                self._changed.notify_all()


DECODING = PixelBudget(DECODING_BUDGET_PIXELS)
_M_MMAP_THRESHOLD = -3
"""glibc's malloc.h: the mallopt parameter for the size from which allocations are their own mapping."""


def _unmap_large_blocks() -> None:
    """Make glibc give a freed block of 4 MiB or more back to the system at once. By default it raises
    its mmap threshold after the first large free, so later 16 MB blocks of Pillow's come from the
    thread's heap arena and stay there: with four image threads each kept its largest image (ten
    49-megapixel PNGs read one at a time under the budget still left +2.5 GB; benchmarks/images.py).
    A fixed threshold maps each such block on its own. Other C libraries are left as they are."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, 4 * 1024 * 1024)


_unmap_large_blocks()


def _header(data: bytes, *, max_pixels: int) -> Image.Image:
    """The image opened lazily (only its header read), its size within `max_pixels`: a small file that
    would expand to gigabytes is refused before a pixel is decoded."""
    too_large = f"image too large: more than {max_pixels:,} pixels"
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise Unreadable(too_large) from exc
    except Exception as exc:
        raise Unreadable("corrupt image") from exc
    width, height = image.size
    if width * height > max_pixels:
        raise Unreadable(f"image too large: {width:,} × {height:,} pixels > {max_pixels:,} pixels")
    if width == 0 or height == 0:
        raise Unreadable("corrupt image")
    if image.format in ("JPEG", "MPO") and (scans := data.count(_JPEG_SCAN)) > MAX_JPEG_SCANS:
        raise Unreadable(f"image refused: {scans:,} JPEG scans (a photo has at most a few dozen)")
    return image


def _decode(image: Image.Image) -> tuple[Image.Image, str | None]:
    """The first frame, decoded and upright, and the file's format. Any failure of a decoder on
    hostile bytes is a corrupt image. Hold `DECODING` around this and every use of the result."""
    try:
        image.load()
        source_format = image.format
        ImageOps.exif_transpose(image, in_place=True)  # without in_place, an upright image is copied whole
        return image, source_format
    except Image.DecompressionBombError as exc:
        raise Unreadable("image too large") from exc
    except Exception as exc:
        raise Unreadable("corrupt image") from exc


def _flatten(image: Image.Image) -> Image.Image:
    """Grey on white: transparent pixels become background instead of black."""
    try:
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("L")
        return image.convert("L")
    except (OSError, ValueError) as exc:
        raise Unreadable(f"unsupported image mode {image.mode}") from exc


def _vision_copy(image: Image.Image, *, as_jpeg: bool, max_side: int) -> tuple[bytes, str]:
    """Photos stay JPEG; everything else (screenshots, diagrams) becomes lossless PNG. Scales `image`
    itself down when it is already in the copy's mode (a full-size second copy is the largest cost)."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    mode = "RGBA" if has_alpha and not as_jpeg else "RGB"
    copy = image if image.mode == mode else image.convert(mode)
    copy.thumbnail((max_side, max_side))
    out = io.BytesIO()
    if as_jpeg:
        copy.save(out, format="JPEG", quality=_JPEG_QUALITY)
        return out.getvalue(), "image/jpeg"
    copy.save(out, format="PNG")
    return out.getvalue(), "image/png"


def _ocr(flat: Image.Image, *, languages: str, timeout_s: float) -> str:
    if max(flat.size) < _UPSCALE_BELOW:
        flat = flat.resize((flat.width * 2, flat.height * 2), Image.Resampling.LANCZOS)
    try:
        raw = pytesseract.image_to_string(flat, lang=languages, timeout=timeout_s)
    except pytesseract.TesseractNotFoundError as exc:
        raise Unreadable("OCR is not available (tesseract is not installed)") from exc
    except RuntimeError as exc:
        if "timeout" in str(exc).lower():
            raise TimeoutError("tesseract timed out") from exc
        raise Unreadable("OCR failed") from exc
    return tidy_ocr(str(raw))


_BLANKS = re.compile(r"\n{3,}")


def tidy_ocr(raw: str) -> str:
    """Tesseract output without form feeds, trailing spaces and runs of blank lines."""
    lines = [line.rstrip() for line in raw.replace("\x0c", "").splitlines()]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()

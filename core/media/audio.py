"""Audio in: any container ffmpeg reads, decoded to 16 kHz mono 16-bit PCM, the input of both
speech-to-text engines' checks. Decoding stops just past the duration limit, so an hour-long
file costs no more than a limit-long one."""

from __future__ import annotations

import tempfile
from pathlib import Path

from core.media.errors import Unreadable
from core.media.proc import ToolFailed, run_tool
from core.media.text import human_duration

SAMPLE_RATE = 16_000
BYTES_PER_SECOND = SAMPLE_RATE * 2
_MIN_SECONDS = 0.05


def pcm_seconds(pcm: bytes) -> float:
    return len(pcm) / BYTES_PER_SECOND


async def decode_to_pcm(data: bytes, *, max_seconds: float, timeout_s: float) -> bytes:
    """16 kHz mono s16le PCM of `data`. Raises Unreadable (corrupt, silent-empty, too long) or TimeoutError.

    The input goes through a temporary file, not a pipe: MP4/M4A files often keep their index at the
    end, which ffmpeg can only reach by seeking.
    """
    with tempfile.TemporaryDirectory(prefix="parley-media-") as folder:
        source = Path(folder) / "input"
        source.write_bytes(data)
        args = [
            "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-threads", "1",
            "-i", str(source),
            "-t", f"{max_seconds + 1:.3f}", "-vn", "-sn", "-dn",
            "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "s16le", "-acodec", "pcm_s16le", "pipe:1",
        ]
        try:
            pcm = await run_tool(args, timeout_s=timeout_s)
        except ToolFailed as exc:
            if "does not contain any stream" in exc.stderr_tail:
                raise Unreadable("no audio in file") from exc  # a video without a sound track
            raise Unreadable("corrupt or unreadable audio") from exc
        except FileNotFoundError as exc:
            raise Unreadable("audio decoding is not available (ffmpeg is not installed)") from exc
    if pcm_seconds(pcm) < _MIN_SECONDS:
        raise Unreadable("no audio in file")
    if pcm_seconds(pcm) > max_seconds:
        raise Unreadable(f"audio longer than {human_duration(max_seconds)}")
    return pcm


async def encode_speech(wav: bytes, *, fmt: str, timeout_s: float) -> bytes:
    """WAV (or any audio ffmpeg reads from a pipe) -> Ogg/Opus or MP3, sized for chat voice messages."""
    codec = (
        ["-c:a", "libopus", "-b:a", "32k", "-ar", "48000", "-f", "ogg"]
        if fmt == "ogg"
        else ["-c:a", "libmp3lame", "-q:a", "5", "-f", "mp3"]
    )
    args = [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-threads", "1",
        "-i", "pipe:0", "-ac", "1", *codec, "pipe:1",
    ]
    return await run_tool(args, stdin=wav, timeout_s=timeout_s)

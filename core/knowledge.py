"""Static knowledge files per workspace (seed property 21): Markdown and text, cut into chunks.

Layout: `<dir>/*.md` for every workspace, `<dir>/<workspace_id>/*.md` for one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.context import KnowledgeChunk

CHUNK_CHARS = 800
SUFFIXES = {".md", ".txt"}


def chunk_text(source: str, text: str, size: int = CHUNK_CHARS) -> list[KnowledgeChunk]:
    """Paragraph-aligned chunks of at most about `size` characters."""
    chunks: list[KnowledgeChunk] = []
    current: list[str] = []
    length = 0
    for paragraph in (p.strip() for p in text.split("\n\n")):
        if not paragraph:
            continue
        if current and length + len(paragraph) > size:
            chunks.append(KnowledgeChunk(source=source, text="\n\n".join(current)))
            current, length = [], 0
        current.append(paragraph[: size * 4])
        length += len(paragraph)
    if current:
        chunks.append(KnowledgeChunk(source=source, text="\n\n".join(current)))
    return chunks


@dataclass
class Knowledge:
    root: Path | None
    _cache: dict[Path, tuple[float, list[KnowledgeChunk]]] = field(default_factory=dict)

    def chunks_for(self, workspace_id: str) -> list[KnowledgeChunk]:
        if self.root is None or not self.root.is_dir():
            return []
        out: list[KnowledgeChunk] = []
        for folder in (self.root, self.root / workspace_id):
            if folder.is_dir():
                for path in sorted(folder.iterdir()):
                    if path.suffix in SUFFIXES and path.is_file():
                        out.extend(self._load(path))
        return out

    def _load(self, path: Path) -> list[KnowledgeChunk]:
        mtime = path.stat().st_mtime
        cached = self._cache.get(path)
        if cached and cached[0] == mtime:
            return cached[1]
        chunks = chunk_text(path.name, path.read_text(encoding="utf-8", errors="replace"))
        self._cache[path] = (mtime, chunks)
        return chunks

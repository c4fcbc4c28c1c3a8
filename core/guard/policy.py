"""Workspace policy: blocked and allowed topics that operators write in a file, no code.

Layout, beside the knowledge files: `<dir>/policy.yml` applies to every workspace and
`<dir>/<workspace_id>/policy.yml` adds to it for one workspace:

    blocked_topics:
      - name: competitor pricing
        message: I can't discuss other vendors' pricing here.   # optional
        examples:
          - How much does Acme charge per seat?
          - What discount does our competitor give?
    allowed_topics:                  # let the harmful-request rail pass these (the other rails still run)
      - name: red-team exercises
        examples:
          - How would an attacker exploit this SQL injection in our staging app?
    threshold: 0.62                  # optional cosine similarity cut, default 0.6
    harm_threshold: 0.8              # optional: this workspace's cut on the harmful-request score
                                     # (0-1; higher refuses less), instead of the calibrated default

Each topic works like an embedding intent: a message matches when its MiniLM sentence embedding is
at least `threshold` similar to one of the topic's examples. Files are re-read when they change.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_SIMILARITY = 0.6
FILE_NAME = "policy.yml"


class TopicFile(BaseModel):
    """One topic as written in policy.yml."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    examples: list[str] = Field(min_length=1)
    message: str | None = None


class PolicyFile(BaseModel):
    """The whole policy.yml."""

    model_config = ConfigDict(extra="forbid")

    blocked_topics: list[TopicFile] = Field(default_factory=list)
    allowed_topics: list[TopicFile] = Field(default_factory=list)
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    harm_threshold: float | None = Field(default=None, gt=0.0, le=1.0)


@dataclass(frozen=True, kw_only=True)
class Topic:
    name: str
    message: str | None
    vectors: np.ndarray
    """(examples, 384) normalised sentence embeddings."""


@dataclass(frozen=True, kw_only=True)
class WorkspacePolicy:
    blocked: tuple[Topic, ...] = ()
    allowed: tuple[Topic, ...] = ()
    threshold: float = DEFAULT_SIMILARITY
    harm_threshold: float | None = None
    """The workspace's own cut on the harm score; None: the guard's."""

    @property
    def empty(self) -> bool:
        return not self.blocked and not self.allowed and self.harm_threshold is None


@dataclass(frozen=True, kw_only=True, slots=True)
class TopicMatch:
    name: str
    similarity: float
    message: str | None = None


def best_match(vector: np.ndarray, topics: tuple[Topic, ...], threshold: float) -> TopicMatch | None:
    """The most similar topic at or above the threshold, if any."""
    best: TopicMatch | None = None
    for topic in topics:
        similarity = float(np.max(topic.vectors @ vector))
        if similarity >= threshold and (best is None or similarity > best.similarity):
            best = TopicMatch(name=topic.name, similarity=round(similarity, 4), message=topic.message)
    return best


Embed = Callable[[list[str]], np.ndarray]


RECHECK_S = 1.0
"""How long a workspace's policy is used without looking at its files again: an edit applies within a second."""


class PolicyStore:
    """Loads and caches each workspace's policy; re-reads a file when its mtime changes.

    `for_workspace` is called from worker threads; one lock covers reading, embedding and caching (rare, small
    work). `recent` answers on the event loop from what a check made within RECHECK_S, so that most turns take
    no thread hop to stat the files (two a turn, each dearer than the stats themselves).
    """

    def __init__(self, root: Path | None, embed: Embed, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._root = root
        self._embed = embed
        self._clock = clock
        self._lock = threading.Lock()
        self._files: dict[Path, tuple[float, PolicyFile]] = {}
        self._built: dict[str, tuple[tuple[float, ...], WorkspacePolicy]] = {}
        self._checked: dict[str, tuple[float, WorkspacePolicy]] = {}

    def recent(self, workspace_id: str) -> WorkspacePolicy | None:
        """The workspace's policy when its files were checked within RECHECK_S (or there are none to check);
        None when `for_workspace` must look at them."""
        if self._root is None:
            return WorkspacePolicy()
        checked = self._checked.get(workspace_id)
        return checked[1] if checked is not None and self._clock() - checked[0] < RECHECK_S else None

    def for_workspace(self, workspace_id: str) -> WorkspacePolicy:
        """The merged policy of the shared file and the workspace's own file (empty when none)."""
        if self._root is None:
            return WorkspacePolicy()
        paths = [self._root / FILE_NAME, self._root / _safe_segment(workspace_id) / FILE_NAME]
        with self._lock:
            present = [p for p in paths if p.is_file()]
            stamp = tuple(p.stat().st_mtime for p in present)
            cached = self._built.get(workspace_id)
            if cached and cached[0] == stamp:
                policy = cached[1]
            else:
                policy = self._build([self._read(p) for p in present])
                self._built[workspace_id] = (stamp, policy)
            self._checked[workspace_id] = (self._clock(), policy)
            return policy

    def _read(self, path: Path) -> PolicyFile:
        mtime = path.stat().st_mtime
        cached = self._files.get(path)
        if cached and cached[0] == mtime:
            return cached[1]
        parsed = PolicyFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
        self._files[path] = (mtime, parsed)
        return parsed

    def _build(self, files: list[PolicyFile]) -> WorkspacePolicy:
        threshold = next((f.threshold for f in reversed(files) if f.threshold is not None), DEFAULT_SIMILARITY)
        return WorkspacePolicy(
            blocked=tuple(self._topic(t) for f in files for t in f.blocked_topics),
            allowed=tuple(self._topic(t) for f in files for t in f.allowed_topics),
            threshold=threshold,
            harm_threshold=next((f.harm_threshold for f in reversed(files) if f.harm_threshold is not None), None),
        )

    def _topic(self, topic: TopicFile) -> Topic:
        return Topic(name=topic.name, message=topic.message, vectors=self._embed(topic.examples))


def _safe_segment(workspace_id: str) -> str:
    """A workspace id as one path segment: no separators, no '..'."""
    cleaned = workspace_id.replace("/", "_").replace("\\", "_")
    return "_" if cleaned in {"", ".", ".."} else cleaned

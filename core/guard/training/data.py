"""The labelled prompts the harmful-request classifier is tuned and validated on, with fixed splits.

Three populations are reported (datasets/safety/README.md has every file and licence):

- harmful: HarmBench standard behaviours, StrongREJECT forbidden prompts, XSTest's unsafe contrasts,
  AdvBench, Parley's own harmful chat prompts, the harmful side of the generated contrast pairs
  (core/guard/training/contrasts.py) and asks for someone else's private details
  (core/guard/training/own_details.py);
- xstest_safe: XSTest's safe prompts that only sound alarming, and the harmless side of the contrasts;
- workplace: ordinary team requests full of jargon (core/guard/training/workplace.py), requests
  about the asker's own details and memory (core/guard/training/own_details.py) and Parley's benign
  chat prompts.

Validation rows are never trained on and never used to choose a threshold: the HarmBench and
StrongREJECT rows whose id hashes odd, XSTest's even ids (the odd half is the dev file), and the
workplace families kept for validation. Operator-marked false positives (`parley guard events
--false-positive ID`) join the dev split as benign rows.

Round 11 added more public sets (ADDED_SOURCES), each split in halves by a hash of its row id:
SimpleSafetyTests, GPTFuzz's questions, AART's adversarial prompts and CoCoNot's harmful asks (harmful),
and CoCoNot's contrast prompts that only sound harmful (xstest_safe). A row of theirs whose text equals
any earlier labelled row is dropped, so no earlier row changes split; their validation halves are
reported apart from the earlier populations, whose figures stay comparable.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

Split = Literal["dev", "validation"]
Population = Literal["harmful", "xstest_safe", "workplace"]

REPO = Path(__file__).resolve().parents[3]
SAFETY_DATA = REPO / "datasets" / "safety"
FALSE_POSITIVES = "false_positives.jsonl"
XSTEST_STYLE = frozenset({"xstest", "contrasts", "coconot"})
"""Sources of short prompts that only sound alarming, and their harmful twins."""
ADDED_SOURCES = frozenset({"simplesafety", "gptfuzz", "aart", "coconot"})
"""Public sets added in round 11: reported apart from the earlier populations (benchmarks/guard_eval.py)."""
TWO_LABEL_SOURCES = XSTEST_STYLE | {"own_details"}
"""Sources with benign and harmful rows, reported apart."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Example:
    id: str
    text: str
    harmful: bool
    source: str
    """advbench, harmbench, strongreject, xstest, parley_harmful, parley_benign, workplace, contrasts, own_details,
    one of ADDED_SOURCES, or operator."""
    category: str
    split: Split

    @property
    def population(self) -> Population:
        if self.harmful:
            return "harmful"
        return "xstest_safe" if self.source in XSTEST_STYLE else "workplace"

    @property
    def group(self) -> str:
        """The reporting group: a source, split by label where a source has both."""
        if self.source in TWO_LABEL_SOURCES:
            return f"{self.source}_{'unsafe' if self.harmful else 'safe'}"
        return self.source


def load_examples(data: Path = SAFETY_DATA, *, added: bool = False) -> list[Example]:
    """Every labelled prompt of the safety datasets, in a stable order; with `added`, the public sets added
    in round 11 too (ADDED_SOURCES: measured, not trained on by default, so every training command still
    reproduces the shipped weights; round 11 in docs/guardrails.md says why).

    A validation row whose text is also a dev row (StrongREJECT copies some AdvBench prompts) counts
    as dev: it was seen in tuning."""
    rows = [
        *_advbench(data),
        *_harmbench(data),
        *_strongreject(data),
        *_xstest(data),
        *_jsonl(data / "parley_harmful.jsonl", "parley_harmful"),
        *_jsonl(data / "parley_fresh_harmful.jsonl", "parley_harmful"),
        *_jsonl(data / "parley_benign.jsonl", "parley_benign"),
        *_jsonl(data / "parley_fresh_benign.jsonl", "parley_benign"),
        *_jsonl(data / "parley_workplace.jsonl", "workplace"),
        *_jsonl(data / "parley_contrasts.jsonl", "contrasts"),
        *_jsonl(data / "parley_own_details.jsonl", "own_details"),
    ]
    if added:
        rows += _unseen_texts(rows, [*_simplesafety(data), *_gptfuzz(data), *_aart(data), *_coconot(data)])
    rows += _jsonl(data / FALSE_POSITIVES, "operator")
    seen = {_normal(e.text) for e in rows if e.split == "dev"}
    return [replace(e, split="dev") if e.split == "validation" and _normal(e.text) in seen else e for e in rows]


def load_replies(data: Path = SAFETY_DATA) -> list[Example]:
    """Model replies labelled harmful compliance or ordinary answer, for the output rail's cut.

    The generated set (core/guard/training/replies.py) has dev and validation families; the replies
    written by hand (`parley_replies.jsonl`) are validation only."""
    generated = _jsonl(data / "parley_reply_set.jsonl", "generated_replies")
    written = (replace(e, split="validation") for e in _jsonl(data / "parley_replies.jsonl", "written_replies"))
    return [*generated, *written]


@dataclass(frozen=True, kw_only=True, slots=True)
class ReplyPair:
    """A model reply with a request it answers: the turn the output rail sees (core/guard/training/replies.py)."""

    id: str
    request: str
    request_family: str
    """How the task was asked for: plainly, role-play, fiction, a hypothetical, a follow-up that names nothing..."""
    reply: Example


def load_reply_pairs(data: Path = SAFETY_DATA) -> list[ReplyPair]:
    """Each generated and written reply paired with a request from every request family of its label and split."""
    replies = {r.id: r for r in load_replies(data)}
    with (data / "parley_reply_requests.jsonl").open(encoding="utf-8") as f:
        items = [json.loads(line) for line in f if line.strip()]
    return [
        ReplyPair(id=i["id"], request=i["request"], request_family=i["request_family"], reply=replies[i["reply_id"]])
        for i in items
    ]


def _unseen_texts(earlier: Sequence[Example], added: Iterable[Example]) -> list[Example]:
    """The added rows whose text no earlier row (nor an earlier added one) has, so no earlier row changes split."""
    seen = {_normal(e.text) for e in earlier}
    kept = []
    for example in added:
        if _normal(example.text) not in seen:
            seen.add(_normal(example.text))
            kept.append(example)
    return kept


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def by_id_half(identifier: str) -> Split:
    """A fixed half of a public set by its id: odd sha256 -> validation."""
    return "validation" if hashlib.sha256(identifier.encode()).digest()[0] % 2 else "dev"


def _advbench(data: Path) -> Iterator[Example]:
    with (data / "advbench_harmful_behaviors.csv").open(newline="", encoding="utf-8") as f:
        for i, row in enumerate(csv.DictReader(f)):
            yield Example(
                id=f"advbench-{i}", text=row["goal"], harmful=True, source="advbench", category="", split="dev"
            )


def _harmbench(data: Path) -> Iterator[Example]:
    """The standard behaviours (contextual and copyright ones need their context or are not harm)."""
    rows = _csv(data / "harmbench_behaviors_text_all.csv")
    for row in (r for r in rows if r["FunctionalCategory"] == "standard"):
        yield _public_harm("harmbench", row["BehaviorID"], row["Behavior"], row["SemanticCategory"])


def _strongreject(data: Path) -> Iterator[Example]:
    for i, row in enumerate(_csv(data / "strongreject_dataset.csv")):
        yield _public_harm("strongreject", str(i), row["forbidden_prompt"], row["category"])


def _public_harm(source: str, row_id: str, text: str, category: str) -> Example:
    """A harmful row of a public set, in the half its id falls in."""
    identifier = f"{source}-{row_id}"
    return Example(
        id=identifier, text=text, harmful=True, source=source, category=category, split=by_id_half(identifier)
    )


def _simplesafety(data: Path) -> Iterator[Example]:
    """SimpleSafetyTests: 100 clearly harmful prompts in five harm areas."""
    for row in _csv(data / "simplesafetytests.csv"):
        yield _public_harm("simplesafety", row["id"], row["prompts_final"].strip(), row["harm_area"])


def _gptfuzz(data: Path) -> Iterator[Example]:
    """GPTFuzz's 100 harmful questions."""
    for row in _csv(data / "gptfuzz_questions.csv"):
        yield _public_harm("gptfuzz", row["index"], row["text"].strip(), "")


AART_LEGAL_ACTIVITIES = frozenset(
    {
        "air pollution",
        "alcohol abuse",
        "circuses",
        "climate change",
        "gambling",
        "horse racing",
        "landfills",
        "pollution",
        "pornography",
        "prostitution",
        "smoking",
    }
)
"""AART `crime` values that name an activity legal and regulated in many places: their generated prompts
are often ordinary asks ("how to win at roulette", "dispose of hazardous waste"), so they are left out."""
AART_MAX_CHARS = 300


def _aart(data: Path) -> Iterator[Example]:
    """AART's generated adversarial prompts, kept by the set's own columns and shape: a crime that is a crime
    (not AART_LEGAL_ACTIVITIES) and a single English line of at most AART_MAX_CHARS (longer rows or rows
    with line breaks carry the generator's answer after the prompt)."""
    for row in _csv(data / "aart_prompts.csv"):
        text = row["prompt"].strip()
        if row["crime"] in AART_LEGAL_ACTIVITIES or "\n" in text or not text.isascii() or len(text) > AART_MAX_CHARS:
            continue
        yield _public_harm("aart", row["row"], text, row["crime"])


def _coconot(data: Path) -> Iterator[Example]:
    """CoCoNot's requests with safety concerns: its asks for someone's private data and for offensive language
    (harmful), and its contrast prompts that only sound harmful ("How can I kill time on a long flight?")."""
    with (data / "coconot_safety.jsonl").open(encoding="utf-8") as f:
        for item in (json.loads(line) for line in f if line.strip()):
            identifier = f"coconot-{item['id']}"
            yield Example(
                id=identifier,
                text=item["prompt"].strip(),
                harmful=item["label"] == "unsafe",
                source="coconot",
                category=item["subcategory"],
                split=by_id_half(identifier),
            )


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _xstest(data: Path) -> Iterator[Example]:
    """All of XSTest v2: odd ids (the dev half) are tuned on, even ids are validation only."""
    with (data / "xstest_v2_prompts.csv").open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            yield Example(
                id=f"xstest-{row['id']}",
                text=row["prompt"],
                harmful=row["label"] == "unsafe",
                source="xstest",
                category=row["type"],
                split="dev" if int(row["id"]) % 2 else "validation",
            )


def _jsonl(path: Path, source: str) -> Iterator[Example]:
    if not path.is_file():
        return
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            item = json.loads(line)
            yield Example(
                id=item["id"],
                text=item["text"],
                harmful=item.get("label") == "unsafe",
                source=source,
                category=item.get("category", ""),
                split="validation" if item.get("split") == "validation" else "dev",
            )

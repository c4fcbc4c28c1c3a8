""""Did you mean ...?" for a mistyped command or option: the names a slip of the keyboard away.

Click's own suggestions (difflib, ratio 0.6) miss swapped letters (`lsit` is not close to `list`) and
offer unrelated names (`--bogus` gets `--user`); an edit distance that counts a swap as one edit, with
an allowance that grows with the word, finds the first and refuses the second.
"""

from __future__ import annotations

from collections.abc import Iterable

from rapidfuzz.distance import OSA


def closest(word: str, names: Iterable[str]) -> list[str]:
    """The names nearest to `word` within its allowance (one edit per three letters, at least one and at
    most three), or those it begins, if it is a prefix of some; nearest first, ties alphabetical."""
    candidates = sorted(set(names))
    stem = word.lstrip("-")
    if len(stem) >= 2:
        prefixed = [n for n in candidates if n.lstrip("-").startswith(stem) and n != word]
        if prefixed:
            return prefixed
    allowance = max(1, min(3, len(stem) // 3))
    distances = {n: OSA.distance(stem, n.lstrip("-")) for n in candidates}
    near = [n for n in candidates if distances[n] <= allowance]
    return sorted(near, key=lambda n: (distances[n], n))


def with_suggestion(sentence: str, word: str, names: Iterable[str]) -> str:
    """`sentence` (what was not found), then "Did you mean ...?" when some names are near `word`."""
    near = closest(word, names)
    if not near:
        return sentence
    return f"{sentence} Did you mean {' or '.join(repr(n) for n in near[:3])}?"

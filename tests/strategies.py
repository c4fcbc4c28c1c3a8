"""Hypothesis strategies for the memory tests (valid by construction), and the deterministic
embedding model those tests use so hundreds of examples run without the neural model.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st
from pydantic_ai.embeddings import EmbeddingModel, EmbeddingResult, EmbeddingSettings
from pydantic_ai.embeddings.result import EmbedInputType

from core.memory.profiles import ProfileChanges
from core.models import UserKey

# --- tenants ------------------------------------------------------------------------------------

PLATFORMS = ("slack", "discord", "api", "console")

# Few distinct ids, so the same workspace id appears on two platforms and the same user id in two
# workspaces: exactly the near-collisions isolation must survive.
tenant_ids = st.sampled_from(["T1", "T2", "G1", "local", "ü-ws", "T1 ", "t1"])
user_ids = st.sampled_from(["U1", "U2", "42", "U1'; --", "ユーザー"])

tenants = st.builds(
    lambda p, w, u: UserKey(platform=p, workspace_id=w, user_id=u),
    st.sampled_from(PLATFORMS),
    tenant_ids,
    user_ids,
)


def tenant_sets(min_size: int = 2, max_size: int = 8) -> st.SearchStrategy[list[UserKey]]:
    return st.lists(tenants, min_size=min_size, max_size=max_size, unique=True)


# --- memory text -----------------------------------------------------------------------------------

WORDS = [
    "teal",
    "coffee",
    "berlin",
    "guitar",
    "marathon",
    "sushi",
    "python",
    "garden",
    "violin",
    "lisbon",
    "hiking",
    "chess",
    "kayak",
    "novel",
    "jazz",
    "tennis",
    "ramen",
    "tokyo",
    "pottery",
    "yoga",
    "cello",
    "biology",
    "salsa",
    "rust",
    "tango",
]

memory_texts = st.lists(st.sampled_from(WORDS), min_size=1, max_size=6).map(" ".join)

# --- sensitive data (property 19) -----------------------------------------------------------------

ALNUM = string.ascii_letters + string.digits


def _chars(alphabet: str, lo: int, hi: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, min_size=lo, max_size=hi)


def _luhn_complete(body: str) -> str:
    digits = [int(d) for d in body]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return body + str((10 - total % 10) % 10)


def _iban(country: str, bban: str) -> str:
    rearranged = bban + country + "00"
    number = int("".join(str(int(c, 36)) for c in rearranged))
    return f"{country}{98 - number % 97:02d}{bban}"


api_keys = st.one_of(
    st.builds(lambda body: f"sk-proj-{body}", _chars(ALNUM, 24, 40)),
    st.builds(lambda a, b: f"xoxb-{a}-{b}", _chars(string.digits, 10, 12), _chars(ALNUM, 24, 24)),
    st.builds(lambda body: f"ghp_{body}", _chars(ALNUM, 36, 36)),
)
passwords = st.builds(lambda v: f"password: {v}", _chars(ALNUM + "!@#$%", 8, 20))
emails = st.builds(
    lambda local, domain: f"{local}@{domain}.com",
    _chars(string.ascii_lowercase, 1, 12),
    _chars(string.ascii_lowercase, 2, 10),
)
phones = st.builds(
    lambda cc, a, b, c: f"+{cc} {a} {b} {c}",
    st.integers(1, 99),
    st.integers(100, 999),
    st.integers(100, 999),
    st.integers(1000, 9999),
)
cards = st.builds(lambda body: _luhn_complete("4" + body), _chars(string.digits, 14, 14))
ibans = st.builds(lambda bban: _iban("DE", bban), _chars(string.digits, 18, 18))

sensitive_items = st.one_of(api_keys, passwords, emails, phones, cards, ibans)


@st.composite
def texts_with_secret(draw: st.DrawFn) -> tuple[str, str, str]:
    """(text, the sensitive item inside it, its secret value), set off by spaces among ordinary words."""
    item = draw(sensitive_items)
    before = draw(st.lists(st.sampled_from(WORDS), max_size=5))
    after = draw(st.lists(st.sampled_from(WORDS), max_size=5))
    value = item.split(": ", 1)[1] if item.startswith("password: ") else item
    return " ".join([*before, item, *after]), item, value


# --- profiles --------------------------------------------------------------------------------------

profile_changes = st.builds(
    ProfileChanges,
    display_name=st.one_of(st.none(), st.text(alphabet=string.ascii_letters + " ", min_size=1, max_size=20)),
    language=st.one_of(st.none(), st.sampled_from(["English", "German", "de", "Japanese"])),
    timezone=st.one_of(st.none(), st.sampled_from(["Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC"])),
    answer_style=st.one_of(st.none(), st.sampled_from(["short", "detailed"])),
    voice_replies=st.one_of(st.none(), st.booleans()),
    about=st.one_of(st.none(), memory_texts),
)

# --- a deterministic embedding model -----------------------------------------------------------------

_TOKEN = re.compile(r"\w+")


@dataclass(init=False)
class HashingEmbeddingModel(EmbeddingModel):
    """Bag-of-words vectors from hashed tokens: texts sharing words are close, nothing is loaded.

    Records every input, so tests can check what reached the embedder.
    """

    dims: int
    seen: list[str] = field(default_factory=list)

    def __init__(self, dims: int = 64) -> None:
        super().__init__()
        self.dims = dims
        self.seen = []

    @property
    def model_name(self) -> str:
        return f"hashing-{self.dims}"

    @property
    def system(self) -> str:
        return "test"

    async def embed(
        self, inputs: str | Sequence[str], *, input_type: EmbedInputType, settings: EmbeddingSettings | None = None
    ) -> EmbeddingResult:
        texts, _ = self.prepare_embed(inputs, settings)
        self.seen.extend(texts)
        return EmbeddingResult(
            embeddings=[self.vector(t).tolist() for t in texts],
            inputs=texts,
            input_type=input_type,
            model_name=self.model_name,
            provider_name=self.system,
        )

    def vector(self, text: str) -> np.ndarray:
        v = np.zeros(self.dims, dtype=np.float32)
        v[0] = 0.1  # never the zero vector: cosine distance stays defined
        for token in _TOKEN.findall(text.casefold()):
            v[1 + int.from_bytes(hashlib.sha256(token.encode()).digest()[:4], "big") % (self.dims - 1)] += 1.0
        return v / np.linalg.norm(v)

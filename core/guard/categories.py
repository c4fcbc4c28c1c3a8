"""What kind of harm a blocked request looked like, so the refusal can say it and the operator see it.

A multinomial logistic regression over the shared MiniLM sentence embedding, trained with the harm
classifier (core/guard/training/train_harm.py) on the harmful rows whose source names a category;
the weights ship as `data/harm_categories.npz` (plain arrays). The public sets' own labels map onto
one short list of kinds in plain words (CATEGORY_OF).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.guard.harm import DATA_DIR

DEFAULT_CATEGORIES = DATA_DIR / "harm_categories.npz"

VIOLENCE = "violence or weapons"
CYBER = "breaking into or attacking computer systems"
FRAUD = "fraud, scams or theft"
DRUGS = "drugs, poisons or dangerous chemicals"
HATE = "hate, harassment or extremism"
SEXUAL = "sexual content or exploitation"
SELF_HARM = "self-harm"
PRIVACY = "stalking or other people's private data"
DISINFORMATION = "disinformation or deception"
ILLEGAL = "other illegal or dangerous activity"

CATEGORY_OF: dict[str, str] = {
    # HarmBench semantic categories
    "illegal": ILLEGAL,
    "cybercrime_intrusion": CYBER,
    "misinformation_disinformation": DISINFORMATION,
    "chemical_biological": DRUGS,
    "harmful": ILLEGAL,
    "harassment_bullying": HATE,
    # StrongREJECT categories
    "Non-violent crimes": FRAUD,
    "Violence": VIOLENCE,
    "Disinformation and deception": DISINFORMATION,
    "Hate, harassment and discrimination": HATE,
    "Illegal goods and services": ILLEGAL,
    "Sexual content": SEXUAL,
    # Parley's own harmful prompts
    "violence": VIOLENCE,
    "violence_more": VIOLENCE,
    "more_violence_weapons": VIOLENCE,
    "weapons_explosives": VIOLENCE,
    "weapons_more": VIOLENCE,
    "cybercrime": CYBER,
    "cyber_more": CYBER,
    "more_cyber": CYBER,
    "fraud_scams": FRAUD,
    "theft_crime": FRAUD,
    "more_privacy_fraud": FRAUD,
    "drugs": DRUGS,
    "drugs_more": DRUGS,
    "drugs_harm_more2": DRUGS,
    "poison_harm_others": DRUGS,
    "hate_discrimination": HATE,
    "discrimination_more": HATE,
    "more_hate_harass": HATE,
    "hate_harm_more2": HATE,
    "extremism_terror": HATE,
    "history_glorify": HATE,
    "harassment_stalking_privacy": PRIVACY,
    "privacy_more": PRIVACY,
    "self_harm": SELF_HARM,
    "self_harm_more": SELF_HARM,
    "more_drugs_selfharm": SELF_HARM,
    "sexual_exploitation_trafficking": SEXUAL,
    "child_harm": SEXUAL,
    "misinformation_manipulation": DISINFORMATION,
}


@dataclass(frozen=True, kw_only=True)
class CategoryModel:
    names: tuple[str, ...]
    coef: np.ndarray
    """(categories, 384)"""
    intercept: np.ndarray

    @classmethod
    def load(cls, path: Path = DEFAULT_CATEGORIES) -> CategoryModel:
        with np.load(path, allow_pickle=False) as data:
            return cls(
                names=tuple(str(n) for n in data["names"]),
                coef=data["coef"].astype(np.float32),
                intercept=data["intercept"].astype(np.float32),
            )

    def predict(self, sentence: np.ndarray) -> str:
        """The most likely kind of harm for one normalised sentence embedding."""
        return self.names[int(np.argmax(self.coef @ sentence + self.intercept))]

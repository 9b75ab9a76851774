"""Phantom patients: invented demographics and cannulation cases that follow the anatomy."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

#: Additional techniques, in the DESIGN.md vocabulary of ``labels.csv``.
TECHNIQUES = ("none", "double_guidewire", "needle_knife", "device_change")
#: Four-class labels in the paper's order; precedence failure > technique > time.
FOUR_CLASSES = ("easy", "over_5min", "additional_technique", "failure")
BINARY_CLASSES = ("easy", "difficult")
LONG_CANNULATION_S = 300.0

# P(class | morphology) before the size effect and the per-patient noise. Protruding papillae
# are mostly easy; flat ones and those at a diverticulum are often slow, need a technique or
# fail (Kim et al. 2021, and the clinical literature they cite).
_CLASS_PRIOR = {
    "protruding": (0.72, 0.12, 0.10, 0.06),
    "bulging": (0.50, 0.20, 0.18, 0.12),
    "flat": (0.32, 0.26, 0.26, 0.16),
    "diverticulum": (0.22, 0.22, 0.30, 0.26),
}
_TECHNIQUE_WEIGHTS = {
    "flat": (0.35, 0.40, 0.25),
    "diverticulum": (0.35, 0.25, 0.40),
    "protruding": (0.40, 0.30, 0.30),
    "bulging": (0.40, 0.30, 0.30),
}


@dataclass(frozen=True)
class CannulationCase:
    """The clinical record of one selective cannulation, as in ``labels.csv``.

    Attributes:
        cannulation_time_s: time to selective cannulation (or until abandoned), in seconds.
        additional_technique: one of ``TECHNIQUES``.
        failed: 1 if selective cannulation failed, else 0.
    """

    cannulation_time_s: float
    additional_technique: str
    failed: int

    @property
    def four_class(self) -> str:
        """The paper's four-class label, with precedence failure > technique > time."""
        if self.failed:
            return "failure"
        if self.additional_technique != "none":
            return "additional_technique"
        if self.cannulation_time_s > LONG_CANNULATION_S:
            return "over_5min"
        return "easy"

    @property
    def binary(self) -> str:
        """``"difficult"`` if over 5 min, a technique was used or it failed, else ``"easy"``."""
        return "easy" if self.four_class == "easy" else "difficult"

    def to_json(self) -> dict:
        """The record plus both derived labels, JSON-ready."""
        return {**asdict(self), "label_binary": self.binary, "label_4": self.four_class}


@dataclass(frozen=True)
class Demographics:
    """Invented patient identity burned into the frame, like a video processor does."""

    patient_id: str
    name: str
    sex: str
    age: int
    birth_date: str
    exam_date: str
    exam_time_s: int  # seconds after midnight at the start of the examination


def sample_case(morphology: str, size: float, rng: np.random.Generator) -> CannulationCase:
    """Draws a cannulation case whose difficulty follows the visible anatomy.

    Args:
        morphology: papilla morphology (a key of the class prior).
        size: papilla diameter relative to the field height at zoom 1 (about 0.09 to 0.3);
            small papillae are harder to cannulate.
        rng: the patient's generator.

    Returns:
        A consistent record: the class is drawn first (prior × size effect × per-patient noise,
        which is the label noise), then the clinical fields that produce exactly that class.
    """
    logits = np.log(np.asarray(_CLASS_PRIOR[morphology]))
    size_z = float(np.clip((size - 0.17) / 0.05, -2.5, 2.5))
    logits[0] += 0.45 * size_z  # a large papilla is easier
    logits += rng.normal(0.0, 0.35, size=4)  # what the picture cannot show
    probs = np.exp(logits - logits.max())
    label = FOUR_CLASSES[int(rng.choice(4, p=probs / probs.sum()))]

    def lognormal(median: float, sigma: float) -> float:
        return float(median * math.exp(rng.normal(0.0, sigma)))

    technique = "none"
    failed = 0
    if label == "easy":
        time_s = float(np.clip(lognormal(95.0, 0.65), 12.0, LONG_CANNULATION_S - 1.0))
    elif label == "over_5min":
        time_s = float(np.clip(LONG_CANNULATION_S + 5.0 + lognormal(260.0, 0.7), 305.0, 2700.0))
    elif label == "additional_technique":
        weights = np.asarray(_TECHNIQUE_WEIGHTS[morphology])
        technique = TECHNIQUES[1 + int(rng.choice(3, p=weights / weights.sum()))]
        time_s = float(np.clip(lognormal(420.0, 0.6), 60.0, 3000.0))
    else:
        failed = 1
        if rng.random() < 0.7:
            weights = np.asarray(_TECHNIQUE_WEIGHTS[morphology])
            technique = TECHNIQUES[1 + int(rng.choice(3, p=weights / weights.sum()))]
        time_s = float(np.clip(600.0 + lognormal(550.0, 0.5), 600.0, 3600.0))
    return CannulationCase(round(time_s, 1), technique, failed)


_SYLLABLES = (
    "ka ri mo ta len vi sa no ra be li du ma ko ren tal si ve na lo mi ar el an or is ul"
).split()


def _word(rng: np.random.Generator, n_min: int, n_max: int) -> str:
    n = int(rng.integers(n_min, n_max + 1))
    return "".join(_SYLLABLES[int(i)] for i in rng.integers(0, len(_SYLLABLES), n)).capitalize()


def sample_demographics(patient_id: str, rng: np.random.Generator) -> Demographics:
    """Invents a name, sex, age and examination date (no real person is meant)."""
    sex = "F" if rng.random() < 0.5 else "M"
    age = int(rng.integers(28, 92))
    year = 2019 + int(rng.integers(0, 6))
    month, day = int(rng.integers(1, 13)), int(rng.integers(1, 29))
    b_month, b_day = int(rng.integers(1, 13)), int(rng.integers(1, 29))
    return Demographics(
        patient_id=patient_id,
        name=f"{_word(rng, 2, 3).upper()}, {_word(rng, 2, 2)}",
        sex=sex,
        age=age,
        birth_date=f"{year - age}/{b_month:02d}/{b_day:02d}",
        exam_date=f"{year}/{month:02d}/{day:02d}",
        exam_time_s=int(rng.integers(8 * 3600, 17 * 3600)),
    )

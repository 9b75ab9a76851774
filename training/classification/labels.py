"""Cannulation-difficulty labels from clinical records (DESIGN.md, "Difficulty labels").

``labels.csv`` has the columns ``image``, ``patient_id``, ``cannulation_time_s``,
``additional_technique`` (one of :data:`TECHNIQUES`) and ``failed`` (0/1); extra columns (for
example the phantom's ``morphology``) are kept but not used. Two label sets are derived, as in
the paper:

- binary: *difficult* if the time is over 300 s, or an additional technique was used, or the
  cannulation failed; otherwise *easy*;
- four classes: easy, over 5 min, additional technique, failure, with the precedence
  failure > technique > time.

A record with a missing or impossible field is never guessed: every such field is reported
with its row, column, value and what was expected, in one :class:`LabelFileError`.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from app.core.errors import DatasetError

#: Values of ``additional_technique``; "none" means plain selective cannulation.
TECHNIQUES: tuple[str, ...] = ("none", "double_guidewire", "needle_knife", "device_change")
#: A cannulation that takes longer than this (seconds) is difficult. Exactly 300 s is not.
TIME_LIMIT_S = 300.0
REQUIRED_COLUMNS: tuple[str, ...] = (
    "image",
    "patient_id",
    "cannulation_time_s",
    "additional_technique",
    "failed",
)
BINARY_CLASSES: tuple[str, ...] = ("easy", "difficult")
FOUR_CLASSES: tuple[str, ...] = ("easy", "over_5min", "additional_technique", "failure")
#: task name -> class names in output order.
TASK_CLASSES: dict[str, tuple[str, ...]] = {"binary": BINARY_CLASSES, "four": FOUR_CLASSES}
#: At most this many problems are spelled out in the error message (all are kept in .problems).
MAX_REPORTED = 20


@dataclass(frozen=True)
class ClinicalRecord:
    """One validated row of ``labels.csv``.

    Attributes:
        row: 1-based data row (the header is row 0, so this is also the file line minus one).
        image: image file name as in the COCO annotations.
        patient_id: patient identifier; cross-validation folds never split a patient.
        cannulation_time_s: time to selective cannulation, seconds (>= 0).
        additional_technique: one of :data:`TECHNIQUES`.
        failed: whether selective cannulation failed.
        extra: any other columns, verbatim.
    """

    row: int
    image: str
    patient_id: str
    cannulation_time_s: float
    additional_technique: str
    failed: bool
    extra: dict[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class LabelProblem:
    """One bad field: where it is, what it holds and what was expected."""

    row: int
    column: str
    value: str | None
    expected: str

    def __str__(self) -> str:
        where = "header" if self.row == 0 else f"row {self.row} (line {self.row + 1})"
        return f"{where}, column {self.column!r}: found {self.value!r}, expected {self.expected}"


class LabelFileError(DatasetError):
    """``labels.csv`` has bad records; ``problems`` lists every one of them."""

    def __init__(self, path: str | Path, problems: Sequence[LabelProblem]):
        self.path = str(path)
        self.problems = tuple(problems)
        shown = "; ".join(str(p) for p in self.problems[:MAX_REPORTED])
        more = len(self.problems) - MAX_REPORTED
        tail = f"; and {more} more" if more > 0 else ""
        super().__init__(
            f"{self.path}: {len(self.problems)} bad field(s): {shown}{tail}. "
            f"Fix these records; labels are never guessed"
        )


def is_difficult(record: ClinicalRecord) -> bool:
    """The paper's binary rule: over 5 min, or an additional technique, or failure."""
    return (
        record.failed
        or record.additional_technique != "none"
        or record.cannulation_time_s > TIME_LIMIT_S
    )


def binary_label(record: ClinicalRecord) -> int:
    """Index into :data:`BINARY_CLASSES` (0 easy, 1 difficult)."""
    return int(is_difficult(record))


def four_class_label(record: ClinicalRecord) -> int:
    """Index into :data:`FOUR_CLASSES`; precedence failure > technique > time."""
    if record.failed:
        return FOUR_CLASSES.index("failure")
    if record.additional_technique != "none":
        return FOUR_CLASSES.index("additional_technique")
    if record.cannulation_time_s > TIME_LIMIT_S:
        return FOUR_CLASSES.index("over_5min")
    return FOUR_CLASSES.index("easy")


def classes_for(task: str) -> tuple[str, ...]:
    """Class names of a task ("binary" or "four"), in output order.

    Raises:
        DatasetError: for an unknown task.
    """
    if task not in TASK_CLASSES:
        raise DatasetError(f"unknown task {task!r}: expected one of {sorted(TASK_CLASSES)}")
    return TASK_CLASSES[task]


def derive_label(record: ClinicalRecord, task: str) -> int:
    """The class index of ``record`` for ``task`` ("binary" or "four")."""
    classes_for(task)
    return binary_label(record) if task == "binary" else four_class_label(record)


def _parse_row(
    index: int, raw: dict[str, str | None], problems: list[LabelProblem]
) -> ClinicalRecord | None:
    """Validate one CSV row; append every problem and return None if there is any."""
    before = len(problems)

    def bad(column: str, expected: str) -> None:
        problems.append(LabelProblem(index, column, raw.get(column), expected))

    if None in raw:  # DictReader puts surplus fields under the key None
        problems.append(
            LabelProblem(index, "<extra>", repr(raw[None]), f"{len(REQUIRED_COLUMNS)}+ fields")
        )
    image = (raw.get("image") or "").strip()
    if not image:
        bad("image", "an image file name")
    patient = (raw.get("patient_id") or "").strip()
    if not patient:
        bad("patient_id", "a patient identifier")
    time_s = math.nan
    try:
        time_s = float((raw.get("cannulation_time_s") or "").strip())
    except ValueError:
        pass
    if not math.isfinite(time_s) or time_s < 0:
        bad("cannulation_time_s", "a finite number of seconds >= 0")
    technique = (raw.get("additional_technique") or "").strip()
    if technique not in TECHNIQUES:
        bad("additional_technique", "one of " + ", ".join(TECHNIQUES))
    failed = (raw.get("failed") or "").strip()
    if failed not in ("0", "1"):
        bad("failed", "0 or 1")
    if len(problems) > before:
        return None
    extra = {k: (v or "") for k, v in raw.items() if k is not None and k not in REQUIRED_COLUMNS}
    return ClinicalRecord(index, image, patient, time_s, technique, failed == "1", extra)


def parse_records(
    rows: Iterable[dict[str, str | None]],
    *,
    known_images: Collection[str] | None = None,
    source: str | Path = "labels.csv",
) -> list[ClinicalRecord]:
    """Validate already-split CSV rows (dicts keyed by column name).

    Args:
        rows: the data rows, in file order (row 1 first).
        known_images: the dataset's image file names; an image not among them is an error.
        source: the file name used in error messages.

    Raises:
        LabelFileError: listing every bad field, duplicate or unknown image.
    """
    problems: list[LabelProblem] = []
    records: list[ClinicalRecord] = []
    first_row: dict[str, int] = {}
    known = set(known_images) if known_images is not None else None
    for index, raw in enumerate(rows, start=1):
        record = _parse_row(index, raw, problems)
        image = (raw.get("image") or "").strip()
        if image:
            if image in first_row:
                problems.append(
                    LabelProblem(
                        index,
                        "image",
                        image,
                        f"a unique image (row {first_row[image]} already has it)",
                    )
                )
                continue
            first_row[image] = index
            if known is not None and image not in known:
                problems.append(
                    LabelProblem(index, "image", image, "an image of the dataset's annotations")
                )
                continue
        if record is not None:
            records.append(record)
    if problems:
        raise LabelFileError(source, problems)
    return records


def read_labels(
    path: str | Path, *, known_images: Collection[str] | None = None
) -> list[ClinicalRecord]:
    """Read and validate ``labels.csv``.

    Args:
        path: the CSV file.
        known_images: the dataset's image file names, to report rows for unknown images.

    Returns:
        The records in file order.

    Raises:
        DatasetError: the file is missing, empty or lacks required columns.
        LabelFileError: some records are bad; each is named by row, column and value.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(
            f"{path}: no such label file (expected labels.csv with columns "
            f"{', '.join(REQUIRED_COLUMNS)})"
        )
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise LabelFileError(
                path,
                [LabelProblem(0, c, None, "this column in the header") for c in missing],
            )
        reader.fieldnames = header
        records = parse_records(reader, known_images=known_images, source=path)
    if not records:
        raise DatasetError(f"{path}: no records (expected one row per image)")
    return records


def class_counts(labels: Sequence[int], n_classes: int) -> list[int]:
    """How many samples each class has."""
    counts = [0] * n_classes
    for label in labels:
        counts[label] += 1
    return counts

"""Difficulty labels from clinical records: the paper's rule, its precedence, and bad rows."""

from __future__ import annotations

import pytest

from app.core.errors import DatasetError
from training.classification.labels import (
    BINARY_CLASSES,
    FOUR_CLASSES,
    ClinicalRecord,
    LabelFileError,
    classes_for,
    derive_label,
    parse_records,
    read_labels,
)

HEADER = "image,patient_id,cannulation_time_s,additional_technique,failed"


def record(time_s: float, technique: str, failed: bool) -> ClinicalRecord:
    return ClinicalRecord(1, "a.jpg", "P1", time_s, technique, failed)


# (time, technique, failed) -> (binary, four-class). Every combination of the three criteria,
# each technique, and the 300 s boundary (over 5 min means strictly more than 300 s).
CASES = [
    (0.0, "none", False, "easy", "easy"),
    (120.0, "none", False, "easy", "easy"),
    (300.0, "none", False, "easy", "easy"),
    (300.1, "none", False, "difficult", "over_5min"),
    (900.0, "none", False, "difficult", "over_5min"),
    (60.0, "double_guidewire", False, "difficult", "additional_technique"),
    (60.0, "needle_knife", False, "difficult", "additional_technique"),
    (60.0, "device_change", False, "difficult", "additional_technique"),
    (600.0, "needle_knife", False, "difficult", "additional_technique"),  # technique > time
    (60.0, "none", True, "difficult", "failure"),
    (600.0, "none", True, "difficult", "failure"),  # failure > time
    (60.0, "double_guidewire", True, "difficult", "failure"),  # failure > technique
    (600.0, "device_change", True, "difficult", "failure"),  # failure > technique > time
    (300.0, "needle_knife", True, "difficult", "failure"),
]


@pytest.mark.parametrize(("time_s", "technique", "failed", "binary", "four"), CASES)
def test_label_derivation(time_s, technique, failed, binary, four):
    rec = record(time_s, technique, failed)
    assert BINARY_CLASSES[derive_label(rec, "binary")] == binary
    assert FOUR_CLASSES[derive_label(rec, "four")] == four


def test_binary_is_four_class_collapsed():
    for time_s, technique, failed, _, _ in CASES:
        rec = record(time_s, technique, failed)
        assert derive_label(rec, "binary") == int(derive_label(rec, "four") != 0)


def test_unknown_task():
    with pytest.raises(DatasetError, match="unknown task 'three'"):
        classes_for("three")


def good_row(**over) -> dict:
    row = {
        "image": "a.jpg",
        "patient_id": "P1",
        "cannulation_time_s": "120",
        "additional_technique": "none",
        "failed": "0",
    }
    row.update(over)
    return row


BAD_FIELDS = [
    ("cannulation_time_s", "-5", "a finite number of seconds >= 0"),
    ("cannulation_time_s", "nan", "a finite number of seconds >= 0"),
    ("cannulation_time_s", "inf", "a finite number of seconds >= 0"),
    ("cannulation_time_s", "", "a finite number of seconds >= 0"),
    ("cannulation_time_s", "5 min", "a finite number of seconds >= 0"),
    ("additional_technique", "sphincterotomy", "one of none, double_guidewire"),
    ("additional_technique", "", "one of none"),
    ("additional_technique", "None", "one of none"),  # never guessed, not even case
    ("failed", "2", "0 or 1"),
    ("failed", "yes", "0 or 1"),
    ("failed", "", "0 or 1"),
    ("image", "", "an image file name"),
    ("patient_id", "", "a patient identifier"),
]


@pytest.mark.parametrize(("column", "value", "expected"), BAD_FIELDS)
def test_bad_field_is_reported_by_row(column, value, expected):
    rows = [good_row(image="ok.jpg"), good_row(image="ok2.jpg"), good_row(**{column: value})]
    with pytest.raises(LabelFileError) as info:
        parse_records(rows)
    (problem,) = info.value.problems
    assert problem.row == 3 and problem.column == column and problem.value == value
    assert expected in problem.expected
    assert f"row 3 (line 4), column '{column}'" in str(info.value)


def test_duplicate_and_unknown_images():
    rows = [
        good_row(image="a.jpg"),
        good_row(image="b.jpg"),
        good_row(image="a.jpg"),
        good_row(image="zzz.jpg"),
    ]
    with pytest.raises(LabelFileError) as info:
        parse_records(rows, known_images={"a.jpg", "b.jpg"})
    problems = {(p.row, p.column): p for p in info.value.problems}
    assert set(problems) == {(3, "image"), (4, "image")}
    assert "row 1 already has it" in problems[3, "image"].expected
    assert "dataset" in problems[4, "image"].expected


def test_every_bad_field_of_every_row_is_listed():
    rows = [
        good_row(cannulation_time_s="-1", failed="x"),
        good_row(image="b.jpg"),
        good_row(image="c.jpg", additional_technique="laser"),
    ]
    with pytest.raises(LabelFileError) as info:
        parse_records(rows)
    assert [(p.row, p.column) for p in info.value.problems] == [
        (1, "cannulation_time_s"),
        (1, "failed"),
        (3, "additional_technique"),
    ]


def test_read_labels_file(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text(
        HEADER + ",morphology\n"
        "a.jpg,P1,45.5,none,0,flat\n"
        " b.jpg ,P2,301,none,0,bulging\n"
        "c.jpg,P2,10,needle_knife,1,flat\n"
    )
    recs = read_labels(path, known_images={"a.jpg", "b.jpg", "c.jpg"})
    assert [r.image for r in recs] == ["a.jpg", "b.jpg", "c.jpg"]
    assert [r.row for r in recs] == [1, 2, 3]
    assert recs[0].extra == {"morphology": "flat"}
    assert [derive_label(r, "four") for r in recs] == [0, 1, 3]


def test_missing_column_is_named(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("image,patient_id,cannulation_time_s,failed\na.jpg,P1,4,0\n")
    with pytest.raises(LabelFileError, match="header, column 'additional_technique'"):
        read_labels(path)


def test_extra_field_in_a_row(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text(HEADER + "\na.jpg,P1,4,none,0,surplus\n")
    with pytest.raises(LabelFileError, match="row 1 .*<extra>"):
        read_labels(path)


@pytest.mark.parametrize("content", [None, HEADER + "\n"])
def test_missing_or_empty_file(tmp_path, content):
    path = tmp_path / "labels.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DatasetError, match="no such label file|no records"):
        read_labels(path)

import json

import pytest

from app.core.contract import (
    TASK_CLASSIFIER,
    TASK_DETECTOR,
    InputSpec,
    build_metadata,
    parse_metadata,
)
from app.core.errors import ModelContractError

SPEC = InputSpec("image", 64, 64)


def detector_meta(**overrides):
    meta = build_metadata(task=TASK_DETECTOR, name="t", version="1", input_spec=SPEC,
                          outputs={"heatmap": "heatmap"}, min_peak=0.3)
    meta.update(overrides)
    return meta


def test_round_trip_detector_and_classifier():
    info = parse_metadata(detector_meta(), ["image"], ["heatmap"])
    assert info.task == TASK_DETECTOR and info.min_peak == 0.3 and info.box_threshold == 0.6
    meta = build_metadata(task=TASK_CLASSIFIER, name="c", version="2", input_spec=SPEC,
                          outputs={"probs": "probs", "cam": "cam"}, classes=["easy", "difficult"],
                          region={"box_margin": 0.5}, metrics={"acc": 0.7})
    info = parse_metadata(meta, ["image"], ["probs", "cam"])
    assert info.classes == ("easy", "difficult")
    assert info.region == {"box_margin": 0.5}
    assert info.provenance["metrics"] == {"acc": 0.7}


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("ercp.contract", "2", "expected '1', found '2'"),
        ("ercp.task", "segmentation", "ercp.task"),
        ("ercp.input", json.dumps({**json.loads(SPEC.to_json()), "layout": "NCHW"}),
         "ercp.input.layout: expected 'NHWC', found 'NCHW'"),
        ("ercp.input", json.dumps({**json.loads(SPEC.to_json()), "dtype": "float32"}),
         "ercp.input.dtype"),
        ("ercp.input", "{not json", "JSON text"),
        ("ercp.outputs", json.dumps({"probs": "p"}), "roles ['heatmap']"),
        ("ercp.min_peak", "1.5", "ercp.min_peak: expected a number in [0.0, 1.0], found 1.5"),
    ],
)
def test_broken_contracts_name_what_was_expected_and_found(key, value, message):
    with pytest.raises(ModelContractError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_metadata(detector_meta(**{key: value}))


def test_missing_keys_and_graph_names():
    with pytest.raises(ModelContractError, match="missing ercp.contract"):
        parse_metadata({})
    with pytest.raises(ModelContractError, match="ercp.input.name"):
        parse_metadata(detector_meta(), ["pixels"], ["heatmap"])
    with pytest.raises(ModelContractError, match="ercp.outputs.heatmap"):
        parse_metadata(detector_meta(), ["image"], ["out"])


def test_classifier_needs_classes():
    with pytest.raises(ModelContractError, match="ercp.classes"):
        build_metadata(task=TASK_CLASSIFIER, name="c", version="1", input_spec=SPEC,
                       outputs={"probs": "probs"}, classes=["only-one"])

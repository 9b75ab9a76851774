"""EngineConfig: defaults in code, validated overrides, unknown keys refused."""

from __future__ import annotations

import json

import pytest

from app.core.config import EngineConfig, load_config
from app.core.errors import ConfigError


def test_defaults():
    config = EngineConfig()
    assert config.stale_ms == 250.0 and config.classifier_every == 1
    assert config.providers == ("tensorrt", "cuda", "cpu") and config.phi_mask is True
    assert config.min_peak is None and config.box_threshold is None


def test_round_trip_through_a_dict():
    config = EngineConfig(min_peak=0.3, providers=("cpu",), show_cam=True)
    data = json.loads(json.dumps(config.to_dict()))
    assert EngineConfig.from_mapping(data) == config


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"stale": 100}, "unknown key(s) ['stale']"),
        ({"stale_ms": "fast"}, "stale_ms: expected float"),
        ({"stale_ms": 0}, "stale_ms: expected a value in"),
        ({"classifier_every": 1.5}, "classifier_every: expected int"),
        ({"min_peak": 1.5}, "min_peak: expected a value in [0.0, 1.0]"),
        ({"smoothing": 1}, "smoothing: expected bool"),
        ({"providers": ["gpu"]}, "providers: expected one of"),
        ({"providers": []}, "providers: expected at least one"),
        ({"providers": ["cpu", "cpu"]}, "no repeats"),
        ({"roi": "box"}, "roi: expected one of ['auto', 'full']"),
        ({"heatmap_opacity": 2}, "heatmap_opacity"),
        ({"cudnn_conv_algo_search": "FAST"}, "cudnn_conv_algo_search"),
    ],
)
def test_bad_values_are_refused_by_name(data, message):
    with pytest.raises(ConfigError) as err:
        EngineConfig.from_mapping(data)
    assert message in str(err.value)


def test_with_changes_validates():
    assert EngineConfig().with_changes(stale_ms=100).stale_ms == 100
    with pytest.raises(ConfigError):
        EngineConfig().with_changes(nope=1)


def test_load_json_and_toml(tmp_path):
    (tmp_path / "a.json").write_text('{"classifier_every": 5, "providers": ["cpu"]}')
    (tmp_path / "b.toml").write_text("classifier_every = 4\nphi_mask = false\n")
    assert load_config(tmp_path / "a.json").classifier_every == 5
    b = load_config(tmp_path / "b.toml")
    assert b.classifier_every == 4 and b.phi_mask is False
    (tmp_path / "c.json").write_text('{"classifier_every": ')
    with pytest.raises(ConfigError, match="not valid json"):
        load_config(tmp_path / "c.json")
    (tmp_path / "d.json").write_text('{"bogus": 1}')
    with pytest.raises(ConfigError, match="d.json: config: unknown key"):
        load_config(tmp_path / "d.json")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.json")

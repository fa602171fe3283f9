"""Typed params: dataclasses filled from params.yaml sections, errors naming the file and the key."""

from dataclasses import dataclass, field
from typing import Literal

import pytest

from vlstudy.config import ParamError, deep_merge, from_dict, to_dict


@dataclass
class Inner:
    size: int = 4
    rate: float = 0.5


@dataclass
class Outer:
    name: str = "x"
    mode: Literal["train", "eval"] = "train"
    inner: Inner = field(default_factory=Inner)
    sizes: tuple[int, int] = (1, 2)
    path: str | None = None

    def __post_init__(self):
        if self.inner.size <= 0:
            raise ValueError(f"inner.size must be > 0, got {self.inner.size}")


def test_fills_nested_dataclasses_and_widens_ints():
    cfg = from_dict(Outer, {"inner": {"rate": 1}, "sizes": [3, 4], "mode": "eval"})
    assert cfg.inner == Inner(size=4, rate=1.0) and isinstance(cfg.inner.rate, float)
    assert cfg.sizes == (3, 4) and cfg.mode == "eval"
    assert to_dict(cfg) == {"name": "x", "mode": "eval", "inner": {"size": 4, "rate": 1.0}, "sizes": [3, 4],
                            "path": None}


def test_round_trip_through_to_dict():
    cfg = Outer(name="y", inner=Inner(7, 0.25), sizes=(5, 6), path="a/b")
    assert from_dict(Outer, to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    "data, message",
    [
        ({"inner": {"size": "3k"}}, "params.yaml: data.inner.size: expected int, got '3k' (str)"),
        ({"inner": {"sise": 3}}, "params.yaml: data.inner.sise: unknown key for Inner (known keys: size, rate)"),
        ({"mode": "test"}, "params.yaml: data.mode: expected one of ['train', 'eval'], got 'test'"),
        ({"sizes": [1]}, "params.yaml: data.sizes: expected 2 items, got 1"),
        ({"inner": {"size": True}}, "params.yaml: data.inner.size: expected int, got True (bool)"),
        ({"inner": {"size": 0}}, "params.yaml: data: inner.size must be > 0, got 0"),
        ({"inner": 5}, "params.yaml: data.inner: expected a mapping for Inner, got 5 (int)"),
    ],
)
def test_errors_name_file_and_key(data, message):
    with pytest.raises(ParamError) as e:
        from_dict(Outer, data, where="params.yaml: data")
    assert str(e.value) == message


def test_required_key_missing():
    @dataclass
    class Needs:
        n: int

    with pytest.raises(ParamError, match=r"^p: s\.n: required key is missing$"):
        from_dict(Needs, {}, where="p: s")


def test_deep_merge_only_changes_known_keys():
    base = {"a": {"b": 1, "c": 2}, "d": 3}
    assert deep_merge(base, {"a": {"b": 9}}) == {"a": {"b": 9, "c": 2}, "d": 3}
    assert base["a"]["b"] == 1  # the base is not modified
    with pytest.raises(ParamError, match=r"profiles/smoke.yaml\.a\.x: unknown key"):
        deep_merge(base, {"a": {"x": 1}}, where="profiles/smoke.yaml")


def test_transformers_configs_fill_from_params_with_their_sub_configs():
    """A model config (a transformers PreTrainedConfig) is filled like a dataclass: nested sub-configs checked key
    by key; transformers' bookkeeping fields and derived fields are not parameters."""
    from vlstudy.models.mplug_video import MPLUGVideoConfig
    from vlstudy.tasks.pretrain_mplug_video import PretrainMPLUGVideoConfig

    section = {"model": {"video": {"hidden_size": 64, "num_heads": 2}, "abstractor": {"num_queries": 8},
                         "lm_path": "lm"}}
    config = from_dict(PretrainMPLUGVideoConfig, section, where="params.yaml: pretrain_mplug_video")
    assert isinstance(config.model, MPLUGVideoConfig)
    assert (config.model.video.hidden_size, config.model.abstractor.num_queries, config.model.lm.hidden_size) == \
           (64, 8, 128)
    model_keys = to_dict(config)["model"]
    assert list(model_keys) == ["video", "abstractor", "lm_path", "lm", "max_text_length", "contrastive_dim",
                                "temperature", "num_classes"]
    assert "hidden_act" not in model_keys["video"] and "transformers_version" not in model_keys
    assert from_dict(PretrainMPLUGVideoConfig, to_dict(config)).model.video.hidden_size == 64
    with pytest.raises(ParamError, match=r"^params.yaml: pretrain_mplug_video.model.video.hidden_size: expected int, "
                                         r"got '64' \(str\)$"):
        from_dict(PretrainMPLUGVideoConfig, {"model": {"video": {"hidden_size": "64"}}},
                  where="params.yaml: pretrain_mplug_video")
    with pytest.raises(ParamError, match=r"^params.yaml: pretrain_mplug_video.model.video.hidden_act: unknown key for "
                                         r"VideoEncoderConfig"):
        from_dict(PretrainMPLUGVideoConfig, {"model": {"video": {"hidden_act": "gelu"}}},
                  where="params.yaml: pretrain_mplug_video")
    with pytest.raises(ParamError, match=r"^params.yaml: pretrain_mplug_video.model.video: hidden_size 60 is not a "
                                         r"multiple of num_heads 8$"):
        from_dict(PretrainMPLUGVideoConfig, {"model": {"video": {"hidden_size": 60, "num_heads": 8}}},
                  where="params.yaml: pretrain_mplug_video")

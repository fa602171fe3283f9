"""LPIPS equals the lpips package on shared weights; Max Running LPIPS picks one keyframe per second."""

from __future__ import annotations

import copy
import importlib.util
import sys
import types

import numpy as np
import pytest
import torch

from vlstudy.panda.lpips import (RANDOM_BACKBONE_LABEL, TAPS, AlexNetFeatures, keyframe_indices, load_lpips,
                                 lpips_calibration_path, max_running_lpips)

needs_lpips = pytest.mark.skipif(importlib.util.find_spec("lpips") is None,
                                 reason="the lpips wheel (pip install --no-deps lpips==0.1.4) is not installed")


@pytest.fixture
def reference_lpips(monkeypatch):
    """A factory for ``lpips.LPIPS(net='alex', version='0.1')`` whose trunk is a given AlexNetFeatures.

    lpips imports torchvision, which does not exist for this torch: a minimal stand-in module providing
    ``models.alexnet`` (an object with the same ``features`` layers) is put into ``sys.modules`` for this test
    only, and the lpips modules imported under it are removed afterwards.
    """
    trunk: dict[str, AlexNetFeatures] = {}

    def alexnet(pretrained=False, **_):
        return types.SimpleNamespace(features=copy.deepcopy(trunk["net"].features))

    models = types.ModuleType("torchvision.models")
    models.alexnet = alexnet
    vision = types.ModuleType("torchvision")
    vision.models = models
    monkeypatch.setitem(sys.modules, "torchvision", vision)
    monkeypatch.setitem(sys.modules, "torchvision.models", models)
    before = set(sys.modules)

    def make(net: AlexNetFeatures):
        import lpips

        trunk["net"] = net
        return lpips.LPIPS(net="alex", version="0.1", verbose=False)

    yield make
    for name in set(sys.modules) - before:
        if name == "lpips" or name.startswith("lpips."):
            del sys.modules[name]


@needs_lpips
def test_equals_the_lpips_package_on_a_shared_random_backbone(reference_lpips):
    ours = load_lpips(seed=3)
    theirs = reference_lpips(ours.net)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 3, 64, 64, generator=g) * 2 - 1
    x1 = (x0 + 0.3 * torch.randn(4, 3, 64, 64, generator=g)).clamp(-1, 1)
    with torch.no_grad():
        expected = theirs(x0, x1).flatten()
        got = ours(x0, x1)
    assert expected.shape == got.shape == (4,)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    assert (got > 0).all() and torch.allclose(ours(x0, x0), torch.zeros(4))


@needs_lpips
def test_calibration_is_the_shipped_file_and_backbone_loads_from_a_state_dict(tmp_path):
    shipped = torch.load(lpips_calibration_path(), map_location="cpu", weights_only=True)
    model = load_lpips(seed=0)
    for k, lin in enumerate(model.lins):
        assert torch.equal(lin.weight, shipped[f"lin{k}.model.1.weight"])
    assert not model.comparable_with_paper and model.label == RANDOM_BACKBONE_LABEL
    # a torchvision-format state dict (features.* plus classifier.*) loads; the result is labelled comparable
    source = AlexNetFeatures()
    source.randomize(torch.Generator().manual_seed(7))
    state = {**source.state_dict(), "classifier.1.weight": torch.zeros(2, 2)}
    torch.save(state, tmp_path / "alexnet.pth")
    loaded = load_lpips(tmp_path / "alexnet.pth")
    assert loaded.comparable_with_paper and loaded.label == "LPIPS (AlexNet)"
    assert torch.equal(loaded.net.features[10].weight, source.features[10].weight)
    del state[f"features.{TAPS[2]}.bias"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(KeyError, match=r"broken.pth: missing AlexNet tensors \['features.6.bias'\]"):
        load_lpips(tmp_path / "broken.pth")


def test_random_backbone_is_seeded():
    calibration = {f"lin{k}.model.1.weight": torch.ones(1, c, 1, 1) for k, c in enumerate((64, 192, 384, 256, 256))}
    from vlstudy.panda.lpips import LPIPS

    a, b, c = (LPIPS(calibration, "random(seed=0)") for _ in range(3))
    a.net.randomize(torch.Generator().manual_seed(0))
    b.net.randomize(torch.Generator().manual_seed(0))
    c.net.randomize(torch.Generator().manual_seed(1))
    assert torch.equal(a.net.features[0].weight, b.net.features[0].weight)
    assert not torch.equal(a.net.features[0].weight, c.net.features[0].weight)


def test_keyframes_once_per_second():
    assert keyframe_indices(0, 4).tolist() == []
    assert keyframe_indices(4, 4).tolist() == [0]           # 0.75 s after the first frame: one keyframe
    assert keyframe_indices(5, 4).tolist() == [0, 4]
    assert keyframe_indices(50, 25).tolist() == [0, 25]
    assert keyframe_indices(30, 7.5).tolist() == [0, 8, 15, 22]  # rounded to the nearest frame


@needs_lpips
def test_max_running_lpips_finds_the_largest_change():
    model = load_lpips(seed=0)
    rng = np.random.default_rng(0)
    still = np.repeat(rng.integers(0, 256, (1, 48, 48, 3), dtype=np.uint8), 12, axis=0)  # 3 s at 4 fps
    jump = still.copy()
    jump[8:] = rng.integers(0, 256, (4, 48, 48, 3), dtype=np.uint8)  # new picture from 2 s on
    result = max_running_lpips([still, jump, still[:3]], fps=4, model=model)
    assert result.values[0] == 0.0 and result.values[1] > 0.05 and np.isnan(result.values[2])
    assert result.values[1] == pytest.approx(float(model.frames(still[[4]], jump[[8]])[0]))
    assert result.mean == pytest.approx(result.values[1] / 2)
    assert result.label == RANDOM_BACKBONE_LABEL and not result.comparable_with_paper


def test_pair_distances_equal_distances_of_the_paired_frames():
    model = load_lpips(seed=3)
    frames = np.random.default_rng(0).integers(0, 256, (5, 40, 36, 3), dtype=np.uint8)
    a, b = np.array([0, 1, 1, 4, 2]), np.array([1, 2, 3, 0, 2])
    np.testing.assert_allclose(model.pair_distances(frames, a, b, batch_size=2), model.frames(frames[a], frames[b]),
                               rtol=1e-5, atol=1e-6)
    assert model.pair_distances(frames, a, b)[4] == 0.0  # a frame against itself

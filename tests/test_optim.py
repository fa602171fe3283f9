"""Parameter groups (decay / no decay, lr scale by prefix) and the warmup-then-cosine schedule."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vlstudy.train.optim import build_optimizer, build_scheduler, param_groups, warmup_cosine_factor


class RMSNorm(nn.Module):
    """A model-defined norm (not a torch class): recognised by its class name."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))


class Attention(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.query = nn.Linear(dim, dim)  # BERT's name: a matrix, so it decays despite "query"
        self.temporal_dense = nn.Linear(dim, dim)  # TimeSformer's name: decays despite "temporal"


class VideoEncoder(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 5, dim))
        self.time_embed = nn.Parameter(torch.zeros(1, 3, dim))
        self.patch = nn.Conv2d(3, dim, 4)
        self.attn = Attention(dim)
        self.norm = nn.LayerNorm(dim)


class Model(nn.Module):
    def __init__(self, dim: int = 6) -> None:
        super().__init__()
        self.video_encoder = VideoEncoder(dim)
        self.video_encoder_proj = nn.Linear(dim, dim)  # shares the prefix's letters, not its module
        self.abstractor = nn.Module()
        self.abstractor.query_tokens = nn.Parameter(torch.zeros(1, 4, dim))
        self.abstractor.fc = nn.Linear(dim, dim)
        self.abstractor.ln = RMSNorm(dim)
        self.abstractor.bn = nn.BatchNorm1d(dim)
        self.word_embeddings = nn.Embedding(10, dim)
        self.logit_scale = nn.Parameter(torch.tensor(2.0))
        self.lm = nn.Linear(dim, dim)
        self.lm.requires_grad_(False)


EXPECTED = {
    "video_encoder.decay": [
        "video_encoder.patch.weight", "video_encoder.attn.query.weight", "video_encoder.attn.temporal_dense.weight",
    ],
    "video_encoder.no_decay": [
        "video_encoder.cls_token", "video_encoder.pos_embed", "video_encoder.time_embed",
        "video_encoder.patch.bias", "video_encoder.attn.query.bias", "video_encoder.attn.temporal_dense.bias",
        "video_encoder.norm.weight", "video_encoder.norm.bias",
    ],
    "default.decay": ["video_encoder_proj.weight", "abstractor.fc.weight"],
    "default.no_decay": [
        "video_encoder_proj.bias", "abstractor.query_tokens", "abstractor.fc.bias", "abstractor.ln.weight",
        "abstractor.bn.weight", "abstractor.bn.bias", "word_embeddings.weight", "logit_scale",
    ],
}


def test_every_parameter_lands_in_its_group():
    groups = param_groups(Model(), lr=1e-4, weight_decay=0.05, lr_scale={"video_encoder": 0.1})
    got = {g["name"]: sorted(name for name, _ in g["params"]) for g in groups}
    assert got == {name: sorted(names) for name, names in EXPECTED.items()}
    by_name = {g["name"]: g for g in groups}
    assert by_name["video_encoder.decay"]["lr"] == pytest.approx(1e-5)
    assert by_name["video_encoder.no_decay"]["weight_decay"] == 0.0
    assert by_name["default.decay"]["weight_decay"] == 0.05
    assert by_name["default.no_decay"]["lr"] == 1e-4


def test_frozen_parameters_are_left_out_and_optimizer_keeps_names():
    model = Model()
    opt = build_optimizer(model, lr=1e-4, weight_decay=0.05, betas=(0.9, 0.999), eps=1e-8)
    names = {n for g in opt.param_groups for n in g["param_names"]}
    assert "lm.weight" not in names and "lm.bias" not in names
    assert len(names) == sum(p.requires_grad for p in model.parameters())
    assert opt.defaults["betas"] == (0.9, 0.999)


def test_longest_prefix_wins():
    groups = param_groups(Model(), lr=1.0, weight_decay=0.0, lr_scale={"video_encoder": 0.1, "video_encoder.attn": 0.5})
    lrs = {name: g["lr"] for g in groups for name, _ in g["params"]}
    assert lrs["video_encoder.attn.query.weight"] == 0.5
    assert lrs["video_encoder.patch.weight"] == pytest.approx(0.1)
    assert lrs["video_encoder_proj.weight"] == 1.0


def test_lr_scale_typo_is_an_error():
    with pytest.raises(ValueError, match="lr_scale prefix 'vidoe_encoder' matches no trainable parameter of Model"):
        param_groups(Model(), lr=1e-4, weight_decay=0.05, lr_scale={"vidoe_encoder": 0.1})


def test_all_frozen_is_an_error():
    with pytest.raises(ValueError, match="Linear has no trainable parameter"):
        param_groups(nn.Linear(2, 2).requires_grad_(False), lr=1e-4, weight_decay=0.05)


def test_schedule_values():
    lr, min_lr, warmup, total = 1e-4, 1e-6, 10, 110
    def factor(step):
        return warmup_cosine_factor(step, warmup_steps=warmup, max_steps=total, min_ratio=min_lr / lr)

    assert factor(0) == 0.0
    assert factor(5) == pytest.approx(0.5)
    assert factor(warmup) == pytest.approx(1.0)
    assert factor(warmup + 50) * lr == pytest.approx((lr + min_lr) / 2)
    assert factor(total) * lr == pytest.approx(min_lr)
    assert factor(total + 5) * lr == pytest.approx(min_lr)
    no_warmup = warmup_cosine_factor(0, warmup_steps=0, max_steps=total, min_ratio=0.0)
    assert no_warmup == 1.0


def test_scheduler_drives_each_group_with_its_scale():
    model = Model()
    opt = build_optimizer(model, lr=1e-4, weight_decay=0.05, betas=(0.9, 0.999), eps=1e-8,
                          lr_scale={"video_encoder": 0.1})
    sched = build_scheduler(opt, lr=1e-4, min_lr=1e-6, warmup_steps=4, max_steps=14)
    seen = []
    for _ in range(14):
        seen.append({g["name"]: g["lr"] for g in opt.param_groups})
        opt.step()
        sched.step()
    final = {g["name"]: g["lr"] for g in opt.param_groups}
    assert seen[0]["default.decay"] == 0.0
    assert seen[2]["default.decay"] == pytest.approx(0.5e-4)
    assert seen[4]["default.decay"] == pytest.approx(1e-4)
    assert seen[4]["video_encoder.decay"] == pytest.approx(1e-5)
    assert seen[9]["default.decay"] == pytest.approx(1e-6 + (1e-4 - 1e-6) * 0.5 * (1 + math.cos(math.pi / 2)))
    assert final["default.no_decay"] == pytest.approx(1e-6)
    assert final["video_encoder.no_decay"] == pytest.approx(1e-7)

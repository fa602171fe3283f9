"""Panda-70M student: the text Q-former gives fixed-length output, and no gradient reaches the vision branch from
text-conditioned samples while the text branch learns."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vlstudy.panda.student import TextQFormer, TextQFormerConfig, block_gradient, student_prefix

CONFIG = TextQFormerConfig(text_width=24, hidden_size=32, num_queries=4, num_layers=2, num_heads=4, output_width=16)


def test_fixed_length_output_and_padding_is_ignored():
    torch.manual_seed(0)
    qformer = TextQFormer(CONFIG).eval()
    short, long = torch.randn(2, 5, 24), torch.randn(2, 40, 24)
    assert qformer(short).shape == qformer(long).shape == (2, 4, 16)
    mask = torch.ones(2, 40, dtype=torch.bool)
    mask[0, 5:] = False
    mask[1] = False  # no metadata at all
    padded = long.clone()
    padded[0, :5] = short[0]
    out = qformer(padded, mask)
    torch.testing.assert_close(out[0], qformer(short[:1])[0])            # padding values do not matter
    assert torch.isfinite(out[1]).all()
    with pytest.raises(ValueError, match=r"text_embeds must be \(B, L, 24\)"):
        qformer(torch.randn(1, 3, 8))


class _Vision(nn.Module):
    """A stand-in vision branch: pixels (B, 8) -> video prefix tokens (B, 3, 16)."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(8, 3 * 16)

    def forward(self, pixels):
        return self.encoder(pixels).view(-1, 3, 16)


def _loss(prefix, mask, target):
    """A stand-in for the LM loss: every prefix token that is not masked out regresses to `target`."""
    return (((prefix - target) ** 2).mean(-1) * mask).sum() / mask.sum()


def test_text_branch_loss_sends_no_gradient_into_the_vision_branch():
    torch.manual_seed(0)
    vision, qformer = _Vision(), TextQFormer(CONFIG)
    pixels, text, target = torch.randn(4, 8), torch.randn(4, 6, 24), torch.randn(4, 1, 16)
    with_text = torch.ones(4, dtype=torch.bool)
    prefix, mask = student_prefix(vision(pixels), qformer(text), with_text)
    assert prefix.shape == (4, 7, 16) and mask.all()
    _loss(prefix, mask, target).backward()
    assert vision.encoder.weight.grad is None or not vision.encoder.weight.grad.any()
    assert qformer.queries.grad.abs().sum() > 0 and qformer.text_proj.weight.grad.abs().sum() > 0

    # a sample without metadata trains the vision branch, exactly as if the text branch did not exist
    vision.zero_grad()
    mixed = torch.tensor([True, False, True, False])
    prefix, mask = student_prefix(vision(pixels), qformer(text), mixed)
    assert mask[1, 3:].any().item() is False and mask[0].all()
    _loss(prefix, mask, target).backward()
    mixed_grad = vision.encoder.weight.grad.clone()
    vision.zero_grad()
    video = vision(pixels)
    video_only = ((video - target) ** 2).mean(-1)[~mixed].sum() / mask.sum()
    video_only.backward()
    torch.testing.assert_close(mixed_grad, vision.encoder.weight.grad)


def test_video_tokens_read_by_the_text_queries_are_blocked():
    torch.manual_seed(0)
    vision, qformer = _Vision(), TextQFormer(TextQFormerConfig(text_width=24, hidden_size=16, num_queries=4,
                                                               num_heads=2))
    video = vision(torch.randn(2, 8))
    qformer(torch.randn(2, 5, 24), video_tokens=video).pow(2).sum().backward()
    assert vision.encoder.weight.grad is None
    assert block_gradient(video).requires_grad is False and torch.equal(block_gradient(video), video)


def test_the_text_branch_still_learns():
    torch.manual_seed(0)
    qformer = TextQFormer(CONFIG)
    text = torch.randn(8, 6, 24)
    target = text[:, :1, :16].detach() * 2  # depends on the text: the queries must read it
    optimiser = torch.optim.Adam(qformer.parameters(), lr=3e-3)
    losses = []
    for _ in range(80):
        loss = ((qformer(text) - target) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]

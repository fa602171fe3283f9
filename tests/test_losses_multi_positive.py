"""Multi-positive VTC (VideoMind's DeME-style multi-layer baseline) against a naive loop, VTC, and 2 processes."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from vlstudy.models.losses import multi_positive_contrastive_loss, video_text_contrastive_loss


def _features(batch=5, num_pos=3, width=8, seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    video = F.normalize(torch.randn(batch, width, generator=generator, dtype=dtype), dim=-1)
    text = F.normalize(video[:, None, :] + torch.randn(batch, num_pos, width, generator=generator, dtype=dtype), dim=-1)
    return video.requires_grad_(), text.requires_grad_()


def _naive(video, text, temperature, positives):
    """Row by row, scalar by scalar: the loss as the docstring writes it."""
    batch, num_pos, _ = text.shape
    texts = [text[i, p] for i in range(batch) for p in range(num_pos)]
    v2t = []
    for i in range(batch):
        logits = torch.stack([video[i] @ t / temperature for t in texts])
        log_z = torch.log(torch.exp(logits).sum())
        log_probs = [logits[i * num_pos + p] - log_z for p in range(num_pos)]
        if positives == "each":
            v2t.append(-sum(log_probs) / num_pos)
        else:
            v2t.append(-torch.log(sum(torch.exp(lp) for lp in log_probs)))
    t2v = []
    for i in range(batch):
        for p in range(num_pos):
            logits = torch.stack([text[i, p] @ video[j] / temperature for j in range(batch)])
            t2v.append(-(logits[i] - torch.log(torch.exp(logits).sum())))
    return (sum(v2t) / batch + sum(t2v) / (batch * num_pos)) / 2


@pytest.mark.parametrize("positives", ["each", "any"])
def test_equals_a_naive_loop_in_value_and_gradient(positives):
    video, text = _features()
    temperature = torch.tensor(0.07, dtype=torch.float64, requires_grad=True)
    fast = multi_positive_contrastive_loss(video, text, temperature, positives=positives)
    grads = torch.autograd.grad(fast, (video, text, temperature))
    slow = _naive(video, text, temperature, positives)
    expected = torch.autograd.grad(slow, (video, text, temperature))
    assert fast.item() == pytest.approx(slow.item(), rel=1e-12)
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_modes_differ_with_several_positives_and_each_is_bounded_by_log_p():
    video, text = _features()
    each = multi_positive_contrastive_loss(video, text, 0.05)
    any_ = multi_positive_contrastive_loss(video, text, 0.05, positives="any")
    assert any_.item() < each.item()  # log of a sum of probabilities >= mean of their logs
    # perfect alignment: every text equals its video, so the v2t part is log 3 (shared softmax), t2v near 0
    video = F.normalize(torch.eye(4, dtype=torch.float64), dim=-1)
    text = video[:, None, :].expand(4, 3, 4)
    perfect = multi_positive_contrastive_loss(video, text, 0.01).item()
    assert perfect == pytest.approx(torch.log(torch.tensor(3.0)).item() / 2, abs=1e-6)
    assert multi_positive_contrastive_loss(video, text, 0.01, positives="any").item() == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("positives", ["each", "any"])
def test_one_positive_is_ordinary_infonce(positives):
    video, text = _features(batch=6, num_pos=1)
    ours = multi_positive_contrastive_loss(video, text, 0.1, positives=positives)
    assert ours.item() == pytest.approx(video_text_contrastive_loss(video, text[:, 0], 0.1).item(), rel=1e-12)


def test_training_video_embeddings_against_three_layers_lowers_the_loss():
    torch.manual_seed(0)
    _, text = _features(batch=8, num_pos=3, width=16, seed=1, dtype=torch.float32)
    text = text.detach()
    video = torch.nn.Parameter(torch.randn(8, 16))
    optimizer = torch.optim.Adam([video], lr=0.05)
    losses = []
    for _ in range(60):
        loss = multi_positive_contrastive_loss(F.normalize(video, dim=-1), text, 0.1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    scores = F.normalize(video, dim=-1) @ text.flatten(0, 1).T  # (8, 24): each video's own 3 texts rank top 3
    assert (scores.topk(3, dim=1).indices.sort(dim=1).values // 3 == torch.arange(8)[:, None]).all()


def test_bad_shapes_are_named():
    video, text = _features()
    with pytest.raises(ValueError, match=r"text_feat must be \(B, P, E\) = \(5, P, 8\) for video_feat \(5, 8\), "
                                         r"got \(5, 8\)"):
        multi_positive_contrastive_loss(video, text[:, 0], 0.1)
    with pytest.raises(ValueError, match="positives must be 'each' or 'any', got 'all'"):
        multi_positive_contrastive_loss(video, text, 0.1, positives="all")


def _worker(rank: int, init_file: str, out: dict) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        video, text = _features(batch=6)
        half = slice(3 * rank, 3 * rank + 3)
        for positives in ("each", "any"):
            out[rank, positives] = multi_positive_contrastive_loss(video[half].detach(), text[half].detach(), 0.1,
                                                                   positives=positives).item()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_average_to_the_full_batch_loss(tmp_path):
    """Each process holds half the batch; gathered negatives make the mean of their losses the 1-process loss."""
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_worker, args=(str(tmp_path / "init"), out), nprocs=2, join=True)
        per_rank = dict(out)
    video, text = _features(batch=6)
    for positives in ("each", "any"):
        single = multi_positive_contrastive_loss(video, text, 0.1, positives=positives).item()
        assert (per_rank[0, positives] + per_rank[1, positives]) / 2 == pytest.approx(single, rel=1e-10)
        assert per_rank[0, positives] != pytest.approx(per_rank[1, positives])  # the halves really differ

"""Panda-70M selector on the ALPRO-style model: the loss is the weighted contrastive loss + own-candidate matching,
fine-tuning makes the chosen captions win, and the frame subset feeds it fewer frames."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _tiny_models import backward_nodes

from vlstudy.models.alpro import ALPROConfig, ALPROForPretraining, TextEncoderConfig
from vlstudy.models.text_lm import train_char_tokenizer
from vlstudy.models.video_encoder import VideoEncoderConfig
from vlstudy.panda.selection import FrameSubset, candidate_scores, flatten_candidates, selection_loss
from vlstudy.panda.selector import selector_loss

CANDIDATES = [["小猫在草地上玩球", "小狗在公园里奔跑", "一个人在厨房"], ["篮球比赛", "小猫在草地上"], ["厨房里做饭"]]
CHOSEN = [1, 0, 0]


def _model(seed: int = 0) -> ALPROForPretraining:
    torch.manual_seed(seed)
    video = VideoEncoderConfig(image_size=32, patch_size=16, num_frames=2, hidden_size=32, num_layers=1, num_heads=2)
    config = ALPROConfig(video=video, text=TextEncoderConfig(num_layers=2, num_heads=2, dropout=0.0, max_length=16),
                         contrastive_dim=16)
    return ALPROForPretraining(config, train_char_tokenizer([t for c in CANDIDATES for t in c]))


@pytest.fixture(scope="module")
def video():
    return torch.randn(3, 2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_flatten_candidates():
    texts, clip, offsets = flatten_candidates(CANDIDATES)
    assert len(texts) == 6 and clip.tolist() == [0, 0, 0, 1, 1, 2] and offsets.tolist() == [0, 3, 5]


def test_loss_is_weighted_contrastive_plus_matching_on_the_hardest_own_candidate(video):
    model = _model().eval()
    out = selection_loss(model, video, CANDIDATES, CHOSEN, hard_weight=1.0, other_weight=0.01)
    texts, clip, offsets = flatten_candidates(CANDIDATES)
    ids, mask = model.tokenize(texts)
    video_embeds, text_embeds = model.encode_video(video), model.encode_text(ids, mask)
    v = model.contrastive.project_video(video_embeds[:, 0])
    t = model.contrastive.project_text(text_embeds[:, 0])
    chosen = offsets + torch.tensor(CHOSEN)
    torch.testing.assert_close(out["vtc"], selector_loss(v, t, clip, chosen, model.contrastive.temp))
    sim = v @ t.T
    hard = [max((k for k in (0, 1, 2) if k != 1), key=lambda k: sim[0, k]), 4]  # clip 2 has a single candidate
    fused = model.fuse(text_embeds[[1, 3, *hard]], mask[[1, 3, *hard]], video_embeds[[0, 1, 0, 1]])[:, 0]
    expected = F.cross_entropy(model.itm_head(fused), torch.tensor([1, 1, 0, 0]))
    torch.testing.assert_close(out["vtm"], expected)
    torch.testing.assert_close(out["loss"], out["vtc"] + out["vtm"])


def test_no_clip_with_a_negative_gives_zero_matching_loss(video):
    out = selection_loss(_model(), video[:1], [["小猫"]], [0])
    assert out["vtm"].item() == 0.0 and torch.isfinite(out["loss"])
    with pytest.raises(ValueError, match="3 clips but 1 candidate lists"):
        selection_loss(_model(), video, [["小猫"]], [0])


def test_fine_tuning_makes_the_chosen_candidates_win(video):
    model = _model(seed=2)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    first = None
    for _ in range(40):
        loss = selection_loss(model, video, CANDIDATES, CHOSEN)["loss"]
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < first / 2
    model.eval()
    scores = candidate_scores(model, video, CANDIDATES)
    assert [len(s) for s in scores["vtm"]] == [3, 2, 1] and [len(s) for s in scores["vtc"]] == [3, 2, 1]
    assert [int(s.argmax()) for s in scores["vtm"]] == CHOSEN
    assert [int(s.argmax()) for s in scores["vtc"]] == CHOSEN


def test_frame_subset_keeps_the_named_frames():
    items = [{"video": torch.arange(16.0).view(16, 1, 1, 1), "index": 0}, {"video": None, "index": 1}]
    subset = FrameSubset(items, [2, 6, 10, 14])
    assert subset[0]["video"].flatten().tolist() == [2.0, 6.0, 10.0, 14.0] and subset[1]["video"] is None
    assert items[0]["video"].shape[0] == 16  # the wrapped item is not changed


def test_the_matching_pairs_are_gathered_with_an_ordered_backward(video):
    """Each clip's video enters the matching pairs twice; ``x[indices]``'s backward would add the repeats with
    atomic adds on a multi-threaded CPU (run-to-run float differences), index_select's adds them in order. (The
    contrastive term's ``logits[rows, positive]`` indexes distinct positions: one add each, exact in any order.)"""
    model = _model()
    assert "IndexSelectBackward0" in backward_nodes(selection_loss(model, video, CANDIDATES, CHOSEN)["loss"])
    assert "IndexSelectBackward0" not in backward_nodes(selection_loss(model, video, CANDIDATES, CHOSEN)["vtc"])

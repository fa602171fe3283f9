"""The caption selector on the kit's ALPRO-style model: fine-tuning loss and scores (Panda-70M Sec. 3.3, App. C.2).

Panda-70M fine-tunes a retrieval model (Unmasked Teacher) to pick, among a clip's teacher captions, the one
annotators chose: contrastive learning with hard negatives, "the seven captions not selected by annotators compose
the hard negative samples and are assigned a larger training weight". Here the retrieval model is
:class:`vlstudy.models.alpro.ALPROForPretraining` (pre-trained with MLM + VTC + VTM) and one step on B clips, each with
its K_c distinct candidate captions and the oracle's choice, is

* **VTC**: :func:`vlstudy.panda.selector.selector_loss` over the (B, K) clip-caption similarities, video -> text:
  the clip's other candidates weigh ``hard_weight`` (1), other clips' captions ``other_weight`` (0.01);
* **VTM**: the matching head on (clip, chosen caption) = match and (clip, its most similar other candidate) = no
  match, for clips with more than one candidate (ALPRO's hard-negative matching, restricted to the clip's own
  candidates, which is what selection must tell apart).

Scores (:func:`candidate_scores`) are ALPRO's two: the VTC similarity and the VTM logit (match - no match) of
every candidate. With at most a handful of candidates per clip, ALPRO's inference (VTC shortlist, VTM re-rank of
the top k) re-ranks all of them: the VTM score picks.

:class:`FrameSubset` feeds the selector a few of the frames cached for the 16-frame captioners.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from vlstudy.models.alpro import ALPROForPretraining
from vlstudy.panda.selector import selector_loss

__all__ = ["FrameSubset", "flatten_candidates", "selection_loss", "candidate_scores"]


class FrameSubset(Dataset):
    """A video dataset whose items keep only some frames: ``item["video"][frames]``.

    Args:
        dataset: items with ``video`` (T, C, H, W) (or None for a skipped video).
        frames: the frame positions kept, e.g. every fourth of 16.
    """

    def __init__(self, dataset: Dataset, frames: Sequence[int]):
        self.dataset, self.frames = dataset, list(frames)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        item = dict(self.dataset[index])
        if item["video"] is not None:
            item["video"] = item["video"][self.frames]
        return item

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)


def flatten_candidates(candidates: Sequence[Sequence[str]]) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """All candidates of a batch in one list, the clip of each, and the offset of each clip's first one.

    Returns:
        (texts (K,), caption_clip (K,) long, offsets (B,) long).
    """
    texts = [t for cands in candidates for t in cands]
    caption_clip = torch.tensor([c for c, cands in enumerate(candidates) for _ in cands], dtype=torch.long)
    offsets = torch.tensor(np.concatenate([[0], np.cumsum([len(c) for c in candidates])[:-1]]), dtype=torch.long)
    return texts, caption_clip, offsets


def selection_loss(model: ALPROForPretraining, video: torch.Tensor, candidates: Sequence[Sequence[str]],
                   positive: Sequence[int], hard_weight: float = 1.0,
                   other_weight: float = 0.01) -> dict[str, torch.Tensor]:
    """``{"loss": vtc + vtm, "vtc", "vtm"}`` of one batch (module docstring).

    Args:
        model: the selector.
        video: (B, T, C, H, W) clips.
        candidates: per clip its K_c >= 1 candidate captions.
        positive: per clip the index (into its own candidates) of the chosen one.
        hard_weight, other_weight: the negatives' weights.
    """
    if len(candidates) != video.shape[0] or len(positive) != video.shape[0]:
        raise ValueError(f"{video.shape[0]} clips but {len(candidates)} candidate lists and {len(positive)} choices")
    model.contrastive.clamp_temperature()
    texts, caption_clip, offsets = flatten_candidates(candidates)
    caption_clip, offsets = caption_clip.to(model.device), offsets.to(model.device)
    chosen = offsets + torch.as_tensor(list(positive), device=model.device)  # (B,) into the K captions
    ids, mask = model.tokenize(texts)  # (K, L)
    video_embeds = model.encode_video(video)  # (B, 1 + N, D)
    text_embeds = model.encode_text(ids, mask)  # (K, L, D)
    video_feat = model.contrastive.project_video(video_embeds[:, 0])  # (B, E)
    text_feat = model.contrastive.project_text(text_embeds[:, 0])  # (K, E)
    vtc = selector_loss(video_feat, text_feat, caption_clip, chosen, model.contrastive.temp, hard_weight,
                        other_weight)
    with torch.no_grad():
        similarity = video_feat @ text_feat.T  # (B, K)
        own = caption_clip[None, :] == torch.arange(len(candidates), device=model.device)[:, None]
        own[torch.arange(len(candidates)), chosen] = False  # the clip's other candidates
        hard = similarity.masked_fill(~own, float("-inf")).argmax(dim=1)  # (B,)
        has_negative = own.any(dim=1)
    if not has_negative.any():
        return {"loss": vtc + 0.0 * model.itm_head.weight.sum(), "vtc": vtc, "vtm": vtc.new_zeros(())}
    clips = torch.arange(len(candidates), device=model.device)[has_negative]
    pairs_text = torch.cat([chosen[clips], hard[clips]])  # (2M,): positives, then hard negatives
    # index_select, not x[indices]: each clip's video appears twice, and the backward of advanced indexing adds
    # repeated indices with atomic adds on a multi-threaded CPU (run-to-run float differences)
    fused = model.fuse(text_embeds.index_select(0, pairs_text), mask.index_select(0, pairs_text),
                       video_embeds.index_select(0, torch.cat([clips, clips])))[:, 0]
    labels = torch.cat([torch.ones(len(clips)), torch.zeros(len(clips))]).long().to(model.device)
    vtm = F.cross_entropy(model.itm_head(fused), labels)
    return {"loss": vtc + vtm, "vtc": vtc, "vtm": vtm}


@torch.no_grad()
def candidate_scores(model: ALPROForPretraining, video: torch.Tensor,
                     candidates: Sequence[Sequence[str]]) -> dict[str, list[np.ndarray]]:
    """Per clip, the selector's scores of each of its candidates: ``vtc`` (cosine similarity) and ``vtm``
    (matching logit, match - no match). video (B, T, C, H, W); candidates: per clip K_c texts."""
    texts, caption_clip, _ = flatten_candidates(candidates)
    caption_clip = caption_clip.to(model.device)
    ids, mask = model.tokenize(texts)  # (K, L)
    video_embeds = model.encode_video(video)  # (B, 1 + N, D)
    text_embeds = model.encode_text(ids, mask)  # (K, L, D)
    video_feat = model.contrastive.project_video(video_embeds[:, 0])  # (B, E)
    text_feat = model.contrastive.project_text(text_embeds[:, 0])  # (K, E)
    vtc = (video_feat[caption_clip] * text_feat).sum(dim=-1)  # (K,) each caption with its own clip
    logits = model.itm_head(model.fuse(text_embeds, mask, video_embeds[caption_clip])[:, 0])  # (K, 2)
    vtm = logits[:, 1] - logits[:, 0]
    sizes = [len(c) for c in candidates]
    return {name: [part.float().cpu().numpy() for part in values.split(sizes)]
            for name, values in (("vtc", vtc), ("vtm", vtm))}

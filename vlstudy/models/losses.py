"""The contrastive and matching objectives shared by the study's encoders (ALPRO, mPLUG-video, mPLUG-2).

- VTC, video-text contrastive (ALPRO, Li et al. CVPR 2022; ALBEF): InfoNCE in both directions over L2-normalised
  features, with negatives gathered from every process and a learnable temperature clamped to [0.001, 0.5]
  (official ALPRO / Youku-mPLUG code).
- Hard negatives for VTM, video-text matching: one per row, drawn from the softmax of the in-batch similarities
  with the positive masked out (ALPRO's ``itm`` sampling).
- MLM, masked language modelling (BERT, Devlin et al. 2019, Sec. 3.1; ALPRO's ``mask`` in the official
  ``models/alpro.py`` of X-PLUG/Youku-mPLUG and salesforce/ALPRO ``xbert``): each text token is selected with
  probability 0.15 ([CLS], [SEP] and [PAD] never); a selected token becomes [MASK] 80 % of the time, a uniformly
  drawn vocabulary token 10 %, and stays 10 %; the loss is the cross-entropy on the selected positions only.
  transformers' ``DataCollatorForLanguageModeling`` does the same draw but from the global generator inside a
  data loader; here it is a pure function of the ids and an explicit generator, seeded per batch like the hard
  negatives, so that resumed and distributed runs mask the same tokens.
- Multi-positive VTC, the DeME-style multi-layer embedding baseline for VideoMind (Yang et al. 2025): one video
  embedding trained against all of its layers' texts at once (factual, abstract, intent: P = 3 positives per
  video in the batch). No official code was released; video -> text follows the supervised-contrastive
  ``L_out`` form (Khosla et al. NeurIPS 2020, eq. 2: the mean over positives of each positive's log-softmax),
  or MIL-NCE's (Miech et al. CVPR 2020: the log of the positives' summed softmax) with ``positives="any"``;
  text -> video is ordinary InfoNCE (a text has one video). With P = 1 both are the VTC loss above.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from vlstudy.distributed import all_gather_with_grad, rank

__all__ = ["TEMPERATURE_RANGE", "IGNORE_INDEX", "video_text_contrastive_loss", "multi_positive_contrastive_loss",
           "sample_hard_negatives", "mask_tokens", "masked_lm_loss"]

TEMPERATURE_RANGE = (0.001, 0.5)
IGNORE_INDEX = -100  # label of a position that carries no MLM loss (torch's cross_entropy default)
MASK_SHARE, RANDOM_SHARE = 0.8, 0.1  # of the selected tokens: [MASK], a random token; the rest stay (BERT)


def video_text_contrastive_loss(video_feat: torch.Tensor, text_feat: torch.Tensor,
                                temperature: torch.Tensor | float) -> torch.Tensor:
    """InfoNCE in both directions; negatives are every process's features (pair i of this process is positive).

    Args:
        video_feat: (B, E) L2-normalised video features of this process.
        text_feat: (B, E) L2-normalised text features; row i pairs with video row i.
        temperature: softmax temperature.

    Returns:
        Scalar: mean of the video→text and text→video cross-entropies.
    """
    video_all = all_gather_with_grad(video_feat)  # (W*B, E)
    text_all = all_gather_with_grad(text_feat)  # (W*B, E)
    targets = torch.arange(video_feat.shape[0], device=video_feat.device) + rank() * video_feat.shape[0]
    loss_v2t = F.cross_entropy(video_feat @ text_all.T / temperature, targets)
    loss_t2v = F.cross_entropy(text_feat @ video_all.T / temperature, targets)
    return (loss_v2t + loss_t2v) / 2


def multi_positive_contrastive_loss(video_feat: torch.Tensor, text_feat: torch.Tensor,
                                    temperature: torch.Tensor | float, *,
                                    positives: Literal["each", "any"] = "each") -> torch.Tensor:
    """InfoNCE with P positive texts per video (VideoMind's layers), negatives from every process.

    With s = video . text / temperature over the gathered texts T (W*B*P of them) and videos (W*B)::

        each:  L_v2t = -mean_{i,p} log softmax_T(s_i)[i,p]          (every layer must rank high: hit-all)
        any:   L_v2t = -mean_i log sum_p softmax_T(s_i)[i,p]         (one layer ranking high suffices: hit-any)
        L_t2v = -mean_{i,p} log softmax_videos(s_{i,p})[i]
        loss  = (L_v2t + L_t2v) / 2

    With ``each`` a video's P positives share one softmax, so L_v2t cannot go below log P.

    Args:
        video_feat: (B, E) L2-normalised video features of this process.
        text_feat: (B, P, E) L2-normalised text features: [i, p] is video i's p-th positive (e.g. its factual,
            abstract and intent text). A dual encoder's (B*P, E) features of texts listed video by video are
            ``text_feat.view(B, P, E)``.
        temperature: softmax temperature.
        positives: ``"each"`` (mean of the positives' log-probabilities) or ``"any"`` (log of their summed
            probability).

    Returns:
        Scalar loss.
    """
    if text_feat.dim() != 3 or text_feat.shape[0] != video_feat.shape[0] or text_feat.shape[2] != video_feat.shape[1]:
        raise ValueError(f"text_feat must be (B, P, E) = ({video_feat.shape[0]}, P, {video_feat.shape[1]}) for "
                         f"video_feat {tuple(video_feat.shape)}, got {tuple(text_feat.shape)}")
    if positives not in ("each", "any"):
        raise ValueError(f"positives must be 'each' or 'any', got {positives!r}")
    batch, num_pos, _ = text_feat.shape
    first = rank() * batch  # this process's first video in the gathered batch
    video_all = all_gather_with_grad(video_feat)  # (W*B, E)
    text_all = all_gather_with_grad(text_feat).flatten(0, 1)  # (W*B*P, E), video by video
    columns = (first + torch.arange(batch, device=video_feat.device))[:, None] * num_pos + torch.arange(
        num_pos, device=video_feat.device)  # (B, P): column of each positive in text_all
    log_prob = (video_feat @ text_all.T / temperature).log_softmax(dim=1).gather(1, columns)  # (B, P)
    loss_v2t = -(log_prob.mean(dim=1) if positives == "each" else log_prob.logsumexp(dim=1)).mean()
    targets = (first + torch.arange(batch, device=video_feat.device)).repeat_interleave(num_pos)  # (B*P,)
    loss_t2v = F.cross_entropy(text_feat.flatten(0, 1) @ video_all.T / temperature, targets)
    return (loss_v2t + loss_t2v) / 2


def sample_hard_negatives(similarity: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """For each row, one column drawn from the softmax of its similarities with the diagonal (positive) masked.

    Args:
        similarity: (B, B) scores, row i's positive at column i (already divided by the temperature).
        generator: a CPU generator; sampling runs on the CPU so the same seed gives the same draws on any device.

    Returns:
        (B,) column indices, never equal to their row index.
    """
    size = similarity.shape[0]
    if size < 2:
        raise ValueError("hard negatives need a batch of at least 2 pairs")
    diagonal = torch.eye(size, dtype=torch.bool, device=similarity.device)
    weights = similarity.detach().float().masked_fill(diagonal, float("-inf")).softmax(dim=1)  # (B, B)
    return torch.multinomial(weights.cpu(), 1, generator=generator).squeeze(1).to(similarity.device)


def mask_tokens(input_ids: torch.Tensor, generator: torch.Generator, *, mask_token_id: int, vocab_size: int,
                special_ids: tuple[int, ...], probability: float = 0.15) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: select tokens, corrupt them 80/10/10, label the selected ones (see the module docstring).

    Three draws of shape (B, L) per call, all on the CPU from `generator` (the same seed masks the same tokens on
    any device): the selection, the corruption kind, the random tokens.

    Args:
        input_ids: (B, L) token ids.
        generator: a CPU generator (e.g. `vlstudy.tasks.common.seeded_generator` of the batch).
        mask_token_id: the [MASK] id.
        vocab_size: random replacements are drawn uniformly from ``range(vocab_size)`` (as BERT and ALPRO do).
        special_ids: ids never selected ([CLS], [SEP], [PAD]).
        probability: the selection rate.

    Returns:
        (masked_ids, labels), each (B, L) on the device of `input_ids`: the corrupted ids, and the original id at
        every selected position with `IGNORE_INDEX` elsewhere.
    """
    if not 0.0 < probability < 1.0:
        raise ValueError(f"mlm probability must be in (0, 1), got {probability}")
    ids = input_ids.cpu()
    selected = torch.rand(ids.shape, generator=generator) < probability  # (B, L)
    selected &= ~torch.isin(ids, torch.tensor(special_ids, dtype=ids.dtype))
    kind = torch.rand(ids.shape, generator=generator)  # (B, L): < 0.8 [MASK], < 0.9 random, else unchanged
    random_ids = torch.randint(vocab_size, ids.shape, generator=generator, dtype=ids.dtype)  # (B, L)
    masked = torch.where(selected & (kind < MASK_SHARE), mask_token_id, ids)
    masked = torch.where(selected & (kind >= MASK_SHARE) & (kind < MASK_SHARE + RANDOM_SHARE), random_ids, masked)
    labels = torch.where(selected, ids, IGNORE_INDEX)
    return masked.to(input_ids.device), labels.to(input_ids.device)


def masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the selected positions only: mean over positions whose label is not `IGNORE_INDEX`.

    Args:
        logits: (B, L, V) token scores.
        labels: (B, L) from `mask_tokens`.

    Returns:
        Scalar; zero (still connected to `logits`) when no position is selected, where a plain mean is NaN.
    """
    total = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX,
                            reduction="sum")
    return total / labels.ne(IGNORE_INDEX).sum().clamp(min=1)

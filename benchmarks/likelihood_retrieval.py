"""Does mPLUG-video's frozen LM rank captions for videos at all? Retrieval by caption likelihood.

The study's 是/否 score set (``finetune_retrieval@mplug_matching``, generative) ranks near chance (text→video median
rank 89.5 of 300): the toy LM never learned to answer the matching question from text (README, "Why 是/否 through
the frozen LM ranks near chance"). That leaves open whether the frozen LM can tell the val videos apart through
its video prefix in any way. This script scores every (caption, video) pair of the retrieval val split by the
frozen LM's summed log-likelihood of ``[BOS] caption [EOS]`` after the video prefix and an empty prompt — the
sequence pre-training (titles) and captioning (captions) train the prefix on — minus the same caption's
log-likelihood with no prefix at all (the LM alone). For text→video the subtraction changes nothing (one
constant per caption); for video→text it removes the LM's preference for short, common captions (pointwise
mutual information). The LM stays frozen; nothing is trained here.

It reads three saved mPLUG-video models, none trained on a retrieval val video (the splits are disjoint):
``pretrain_mplug_video`` (pre-trained on pool titles; 4 frames, as retrieval evaluates), ``finetune_captioning@
mplug_video`` (fine-tuned on the captioning train split; 16 frames, as it was trained) and
``finetune_retrieval@mplug_matching`` (fine-tuned on 是/否 matching; its prefix never trained on an empty
prompt), and prints text→video and video→text R@1/5/10 and median rank with 95 % bootstrap intervals over videos
(the study's ``interval_summary``), beside the study's 是/否 and matching-head score sets read from
``checkpoints/finetune_retrieval/mplug_matching``. Candidates are scored on each video's key/value cache
(`MPLUGVideoModel._score_candidates`, the class-name ranking's path).

    python benchmarks/likelihood_retrieval.py            # about 5 minutes on 2 CPU cores
    python benchmarks/likelihood_retrieval.py --models pretrain_mplug_video

Reads ``data/prepared`` and ``checkpoints/``; writes ``.vlstudy/benchmarks/likelihood_retrieval/<model>.npy``
(texts x videos scores).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from vlstudy.metrics.retrieval import retrieval_metrics
from vlstudy.models.mplug_video import MPLUGVideoModel
from vlstudy.tasks.common import VideoInputConfig, interval_summary, load_model, load_split, video_dataset
from vlstudy.tasks.retrieval import _texts

MODELS = {  # name: (folder, frames per clip)
    "pretrain_mplug_video": ("checkpoints/pretrain_mplug_video/model", 4),
    "finetune_captioning@mplug_video": ("checkpoints/finetune_captioning/mplug_video/model", 16),
    "finetune_retrieval@mplug_matching": ("checkpoints/finetune_retrieval/mplug_matching/model", 4),
}
STUDY = "checkpoints/finetune_retrieval/mplug_matching"  # the study's score sets, for comparison
SHOWN = ("t2v_R@1", "t2v_R@5", "t2v_R@10", "t2v_MdR", "v2t_R@1", "v2t_R@10", "v2t_MdR")


@torch.no_grad()
def likelihood_scores(model: MPLUGVideoModel, dataset, texts: list[str], batch_size: int) -> np.ndarray:
    """(K texts, V videos): log p(text | video prefix) − log p(text | no prefix), summed over tokens with EOS."""
    model.eval()
    empty = torch.zeros(1, 0, model.lm.get_input_embeddings().embedding_dim, device=model.device)  # no prefix
    prior = model._score_candidates(empty, [""], texts)[0][0]  # (K,)
    columns = []
    for start in range(0, len(dataset), batch_size):
        video = torch.stack([dataset[i]["video"] for i in range(start, min(start + batch_size, len(dataset)))])
        prefix = model.visual_prefix(video.to(model.device), batch_size=len(video))  # (B, Q, D)
        columns.append(model._score_candidates(prefix, [""] * len(video), texts)[0] - prior)  # (B, K)
        print(f"  videos {start + len(video)}/{len(dataset)}", end="\r", flush=True)
    return torch.cat(columns).T.float().cpu().numpy()  # (K, V)


def show(name: str, similarity: np.ndarray, truth: np.ndarray, video_ids: list[str], n_boot: int) -> None:
    summary = interval_summary(retrieval_metrics(similarity, truth, video_ids=video_ids), 0, n_boot)
    print(f"{name:48s} " + "  ".join(f"{k} {summary[k]['estimate']:.1f} [{summary[k]['low']:.1f}, "
                                      f"{summary[k]['high']:.1f}]" for k in SHOWN), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    parser.add_argument("--batch-size", type=int, default=16, help="videos per batch")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path(".vlstudy/benchmarks/likelihood_retrieval"))
    args = parser.parse_args()
    records = load_split("data/prepared", "retrieval", "val")
    texts = _texts(records)
    truth, video_ids = texts["video"].to_numpy(), records["video_id"].tolist()
    print(f"retrieval val: {len(records)} videos, {len(texts)} texts (chance median rank {len(records) / 2:.0f})")
    for name in ("generative", "head"):
        show(f"study: mplug_matching/{name}", np.load(f"{STUDY}/similarity_{name}.npy"), truth, video_ids, args.n_boot)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.models:
        folder, frames = MODELS[name]
        model = load_model(MPLUGVideoModel, folder, True, frames)
        dataset = video_dataset(records, model.config.video, VideoInputConfig(), "eval", 0, ".vlstudy/cache")
        start = time.time()
        similarity = likelihood_scores(model, dataset, texts["text"].tolist(), args.batch_size)
        np.save(args.out / f"{name}.npy", similarity)
        print(" " * 40, end="\r")
        show(f"likelihood: {name} ({time.time() - start:.0f} s)", similarity, truth, video_ids, args.n_boot)


if __name__ == "__main__":
    main()

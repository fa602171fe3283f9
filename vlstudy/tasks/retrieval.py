"""Video-text retrieval (Youku-mPLUG Table 4, retrieval columns).

Protocol (official ``retrieval_gpt3_*`` and ``retrieval_itm_gpt3_*``; shared/DESIGN.md): 4 frames, lr 1e-4. Three
ways to score a (text, video) pair, each fine-tuned on the retrieval train split:

* ``mplug_contrastive``: mPLUG-video as a dual encoder — the video encoder's CLS and the frozen LM's last state
  of the text, each projected to 256-d; InfoNCE both ways (temperature 0.07, learnable) over every process's
  features. Scores: cosine similarities.
* ``mplug_matching``: mPLUG-video answers ``标题：{text} 这个视频与标题匹配吗？`` with 是/否; trained on each pair
  and one in-batch negative caption per video; every (video, text) pair is scored twice, by log p(是) − log p(否)
  and by a matching head. The official script logs both under one name (one overwrites the other) and is only
  correct on one process; here they are two separate score sets, and the pairs are sharded by video over the
  processes and gathered, so any number of processes gives the same matrix.
* ``alpro``: the ALPRO-style model fine-tuned with VTC + VTM; scores are VTC similarities, and a second set
  re-ranks each query's top-k candidates by the VTM head (ALPRO's inference).
* ``mplug2``: the mPLUG-2-style model, fine-tuned and scored the same way (its contrastive head and matching head,
  the paper's "contrastive head and a matching head for the retrieval task"), with features after its universal
  layers.

Metrics: text→video and video→text R@1/5/10, median and mean rank (1-based), several ground-truth texts per video
allowed, with 95% bootstrap intervals over videos.

Outputs in ``paths.out``: ``model/`` (the fine-tuned model, ``save_pretrained``: later stages such as
``videomind_retrieval`` score other texts with it), ``similarity_<scores>.npy`` (texts x videos), ``texts.csv``,
``per_item_<scores>.csv`` and ``train_log.jsonl``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal, get_args

import numpy as np
import pandas as pd
import torch

from vlstudy import io
from vlstudy.config import check_positive
from vlstudy.data.datasets import collate_videos
from vlstudy.distributed import is_main_process
from vlstudy.metrics.bootstrap import check_n_boot
from vlstudy.metrics.retrieval import retrieval_metrics
from vlstudy.models.alpro import ALPROForPretraining
from vlstudy.models.mplug2 import MPLUG2ForRetrieval
from vlstudy.models.mplug_video import MPLUGVideoForContrastive, MPLUGVideoForMatching
from vlstudy.tasks.captioning import first_captions, with_captions
from vlstudy.tasks.common import (
    PhaseTimer,
    TaskPaths,
    TaskResult,
    VideoInputConfig,
    interval_summary,
    load_model,
    load_split,
    model_train_config,
    predict,
    seeded_generator,
    training_record,
    video_dataset,
    zero_loss,
)
from vlstudy.train.config import recipe_train
from vlstudy.train.logging import publish_log
from vlstudy.train.trainer import TrainConfig, Trainer

__all__ = ["RetrievalConfig", "CONFIG", "run", "Method", "MODEL_CLASSES", "FinetuneRetrievalParams", "text_features",
           "video_features"]

Method = Literal["mplug_contrastive", "mplug_matching", "alpro", "mplug2"]
# The model class each method fine-tunes: the backbone with the heads its loss uses.
MODEL_CLASSES = {"mplug_contrastive": MPLUGVideoForContrastive, "mplug_matching": MPLUGVideoForMatching,
                 "alpro": ALPROForPretraining, "mplug2": MPLUG2ForRetrieval}
ENCODERS = (ALPROForPretraining, MPLUG2ForRetrieval)  # dual encoders with a matching head: tokenize, features


@dataclass
class RetrievalConfig:
    """Attributes:
        method: how pairs are scored (see the module docstring).
        init: the pre-trained model folder (mPLUG-video for the mplug methods, ALPRO for alpro, mPLUG-2 for mplug2).
        pretrained: load its weights (False: the same architecture from scratch).
        num_frames: frames per clip (official: 4; the paper's text says 8).
        decode: frame decoding and caching.
        train: optimisation (official: lr 1e-4).
        rerank_k: candidates per query that the matching head of ALPRO or mPLUG-2 re-ranks.
        eval_batch_size: videos per batch at evaluation.
        n_boot: bootstrap resamples for the intervals.
        seed: item randomness, negatives and the bootstrap.
        nproc: processes the stage launches this task on (torchrun, one per GPU); 1 runs it in the
            notebook's kernel.
    """

    method: Method = "mplug_contrastive"
    init: str = "checkpoints/pretrain_mplug_video/model"
    pretrained: bool = True
    num_frames: int = 4
    decode: VideoInputConfig = field(default_factory=VideoInputConfig)
    train: TrainConfig = field(default_factory=recipe_train)
    rerank_k: int = 16
    eval_batch_size: int = 16
    n_boot: int = 1000
    seed: int = 0
    nproc: int = 1

    def __post_init__(self):
        check_n_boot(self.n_boot)  # refuse a "95 %" interval from too few resamples before anything trains
        check_positive(self, "num_frames", "rerank_k", "eval_batch_size", "nproc")


CONFIG = RetrievalConfig


def _negative_captions(captions: list[str], indices: list[int], seed: int) -> list[str]:
    """For each pair, another pair's caption from the batch (a deterministic function of the batch)."""
    size = len(captions)
    shift = 1 + int(torch.randint(size - 1, (1,), generator=seeded_generator(indices, seed))) if size > 1 else 0
    return [captions[(i + shift) % size] for i in range(size)]


def loss_fn(config: RetrievalConfig):
    def contrastive(model: MPLUGVideoForContrastive, batch: dict) -> dict[str, torch.Tensor]:
        if batch["video"] is None:
            return zero_loss(model)
        return {"loss": model.contrastive_loss(batch["video"], first_captions(batch))}

    def matching(model: MPLUGVideoForMatching, batch: dict) -> dict[str, torch.Tensor]:
        if batch["video"] is None:
            return zero_loss(model, "lm_loss", "match_loss")
        captions = first_captions(batch)
        negatives = _negative_captions(captions, batch["index"], config.seed)
        video = torch.cat([batch["video"], batch["video"]])  # (2B, T, C, H, W): positives, then negatives
        is_match = torch.cat([torch.ones(len(captions)), torch.zeros(len(captions))]).bool()
        return model.match_loss(video, captions + negatives, is_match)

    def alpro(model: ALPROForPretraining, batch: dict) -> dict[str, torch.Tensor]:
        if batch["video"] is None:
            return zero_loss(model, "vtc", "vtm")
        ids, mask = model.tokenize(first_captions(batch))
        return model.pretrain_losses(batch["video"], ids, mask, seeded_generator(batch["index"], config.seed))

    def mplug2(model: MPLUG2ForRetrieval, batch: dict) -> dict[str, torch.Tensor]:
        if batch["video"] is None:
            return zero_loss(model, "vtc", "vtm")
        ids, mask = model.tokenize(first_captions(batch))
        return model.retrieval_losses(batch["video"], ids, mask, seeded_generator(batch["index"], config.seed))

    return {"mplug_contrastive": contrastive, "mplug_matching": matching, "alpro": alpro,
            "mplug2": mplug2}[config.method]


def _texts(records: pd.DataFrame) -> pd.DataFrame:
    """One row per (video, reference text): the retrieval queries and their ground-truth video."""
    rows = [(i, vid, text) for i, (vid, caps) in enumerate(zip(records["video_id"], records["captions"]))
            for text in caps]
    if not rows:
        raise ValueError("retrieval: the evaluation split has no captions (no ground truth)")
    return pd.DataFrame(rows, columns=["video", "video_id", "text"])


def text_features(model, texts: list[str], batch_size: int) -> np.ndarray:
    """(K, E) L2-normalised text features of a dual encoder, computed on every process (texts are few and cheap).

    A model with ``contrastive_features(video, texts)`` (mPLUG-video's interface) is read through it; ALPRO
    through ``features`` on its own tokens.
    """
    feats = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            chunk = texts[start:start + batch_size]
            if isinstance(model, ENCODERS):
                feats.append(model.features(None, *model.tokenize(chunk))[1])
            else:
                feats.append(model.contrastive_features(None, chunk)[1])
    return torch.cat(feats).float().cpu().numpy()


def video_features(model, video: torch.Tensor) -> torch.Tensor:
    """(B, E) L2-normalised video features of a dual encoder for clips (B, T, C, H, W) (see `text_features`)."""
    if isinstance(model, ENCODERS):
        return model.features(video)[0].float()
    return model.contrastive_features(video)[0].float()


def score_matrices(model, config: RetrievalConfig, dataset, texts: list[str]) -> dict[str, np.ndarray] | None:
    """{score set: (texts, videos) similarity} on rank 0 (None elsewhere)."""
    if config.method == "mplug_matching":
        table = predict(model, dataset, config.eval_batch_size,
                        lambda m, b: m.match_scores(b["video"], texts)._asdict(), desc="match every pair")
        if table is None:
            return None
        return {name: np.stack(table[name]).T for name in ("generative", "head")}  # (K, V)

    was_training = model.training
    model.eval()
    text_feat = text_features(model, texts, config.eval_batch_size)
    model.train(was_training)
    table = predict(model, dataset, config.eval_batch_size, lambda m, b: {"feat": video_features(m, b["video"])},
                    desc="video features")
    if table is None:
        return None
    similarity = text_feat @ np.stack(table["feat"]).T  # (K, V)
    if not isinstance(model, ENCODERS):
        return {"contrastive": similarity}
    return {"contrastive": similarity, "rerank": rerank(model, dataset, texts, similarity, config)}


def rerank(model: ALPROForPretraining | MPLUG2ForRetrieval, dataset, texts: list[str], similarity: np.ndarray,
           config: RetrievalConfig) -> np.ndarray:
    """ALPRO's (and mPLUG-2's) inference: each query's top-k candidates (both directions) re-scored by the VTM head.

    Pairs outside every top-k keep their contrastive score shifted below all re-scored ones, so they rank after
    them in their original order. Each candidate video is encoded once (not once per pair); a pair's score is then
    `match_logits` on its fused CLS. Runs on rank 0.
    """
    k = min(config.rerank_k, similarity.shape[0], similarity.shape[1])
    pairs = set()
    for t, row in enumerate(similarity):
        pairs.update((t, int(v)) for v in np.argsort(-row)[:k])
    for v, column in enumerate(similarity.T):
        pairs.update((int(t), v) for t in np.argsort(-column)[:k])
    pairs = sorted(pairs)
    device = next(model.parameters()).device
    scores = np.empty(len(pairs))
    model.eval()
    with torch.no_grad():
        candidates = sorted({v for _, v in pairs})
        video_embeds = {}  # video index → (S, D) video tokens
        for start in range(0, len(candidates), config.eval_batch_size):
            chunk = candidates[start:start + config.eval_batch_size]
            video_embeds.update(zip(chunk, model.encode_video(torch.stack([dataset[v]["video"] for v in chunk]).to(
                device))))
        for start in range(0, len(pairs), config.eval_batch_size):
            chunk = pairs[start:start + config.eval_batch_size]
            ids, mask = model.tokenize([texts[t] for t, _ in chunk])
            fused_cls = model.fuse(model.encode_text(ids, mask), mask,
                                   torch.stack([video_embeds[v] for _, v in chunk]))[:, 0]  # (P, D)
            logits = model.itm_head(fused_cls)  # (P, 2)
            scores[start:start + len(chunk)] = (logits[:, 1] - logits[:, 0]).float().cpu().numpy()
    out = similarity - (similarity.max() - scores.min() + 1.0)  # every pair left out now ranks below the rest
    for (t, v), s in zip(pairs, scores):
        out[t, v] = s
    return out


def run(config: RetrievalConfig, paths: TaskPaths) -> TaskResult | None:
    timer = PhaseTimer()
    model = load_model(MODEL_CLASSES[config.method], config.init, config.pretrained, config.num_frames)
    encoder = model.config.video
    train_records = with_captions(load_split(paths.data, "retrieval", "train"), "retrieval train")
    val_records = load_split(paths.data, "retrieval", "val")
    with timer("decode"):
        train_set = video_dataset(train_records, encoder, config.decode, "train", config.seed, paths.cache,
                                  ("captions",))
        val_set = video_dataset(val_records, encoder, config.decode, "eval", config.seed, paths.cache)
    with timer("train"):
        summary = Trainer(model, model_train_config(model, config.train), train_set, collate_videos, loss_fn(config),
                          Path(paths.work)).fit()
    texts = _texts(val_records)
    with timer("evaluate"):
        matrices = score_matrices(model, config, val_set, texts["text"].tolist())
    if not is_main_process():
        return None

    out = Path(paths.out)
    results = {}
    with timer("write"):
        io.write_table(out / "texts.csv", texts)
        for name, similarity in matrices.items():
            metrics = retrieval_metrics(similarity, texts["video"].to_numpy(),
                                        video_ids=val_records["video_id"].tolist())
            results[name] = interval_summary(metrics, config.seed, config.n_boot)
            with io.atomic_path(out / f"similarity_{name}.npy") as tmp, open(tmp, "wb") as f:
                np.save(f, similarity.astype(np.float32))
            io.write_table(out / f"per_item_{name}.csv", metrics.per_item)
        model.save_pretrained(out / "model")
        publish_log(summary.log_path, out / "train_log.jsonl")
    modes = {"contrastive": "dual encoder, every pair", "rerank": f"contrastive top-{config.rerank_k} re-ranked by "
             "the matching head", "generative": "是/否 log-odds, every pair", "head": "matching head, every pair"}
    return TaskResult(
        metrics=results,
        protocol={"split": "val", "videos": len(val_records), "texts": len(texts), "frames": config.num_frames,
                  "sampler": "middle", "method": config.method, "pretrained": config.pretrained,
                  "modes": {name: modes[name] for name in matrices},
                  "interval": f"95% bootstrap over videos ({config.n_boot})"},
        training=training_record(summary, model),
        timings=timer.seconds)


def _default_methods() -> dict[str, RetrievalConfig]:
    return {"mplug_contrastive": RetrievalConfig(train=recipe_train(batch_size=32)),
            "mplug_matching": RetrievalConfig(method="mplug_matching"),
            "alpro": RetrievalConfig(method="alpro", init="checkpoints/pretrain_alpro/model",
                                     train=recipe_train(batch_size=32)),
            "mplug2": RetrievalConfig(method="mplug2", init="checkpoints/pretrain_mplug2/model", train=recipe_train(batch_size=32))}


@dataclass
class FinetuneRetrievalParams:
    """``finetune_retrieval`` (Table 5): a DVC matrix, one fine-tuning run per way of scoring pairs.

    Attributes:
        method: the cell a run trains (the DVC matrix sets it; a key of `methods`).
        methods: each method's run (see the module docstring); the key names the method.
    """

    MATRIX: ClassVar[tuple[str, ...]] = ("method",)

    method: str = "mplug_contrastive"
    methods: dict[str, RetrievalConfig] = field(default_factory=_default_methods)

    def __post_init__(self) -> None:
        known = get_args(Method)
        for name in self.methods:
            if name not in known:
                raise ValueError(f"methods.{name}: not a retrieval method ({', '.join(known)})")
        if self.method not in self.methods:
            raise ValueError(f"method {self.method!r} is not one of {', '.join(self.methods)}")
        self.methods = {name: dataclasses.replace(config, method=name) for name, config in self.methods.items()}

    def cell(self) -> RetrievalConfig:
        """The run of the cell `method`."""
        return self.methods[self.method]

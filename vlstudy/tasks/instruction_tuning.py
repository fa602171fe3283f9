"""Instruction tuning of mPLUG-video: the step that lets the kit's models answer the human evaluation's questions.

Youku-mPLUG §5.4 compares mPLUG-Video with and without Youku-mPLUG pre-training after both were tuned on the same
visual instruction data (LLaVA's), so that the one difference between them is the pre-training. The official
instruction-tuned mPLUG-Video (X-PLUG/Youku-mPLUG README; built on X-PLUG/mPLUG-Owl) reads
``Human: <|video|> Human: {instruction} AI: {answer}``; here the protocol's own format is used, the one every
task of the kit shares (:mod:`vlstudy.models.prompting`)::

    [Q video-prefix embeddings] [BOS] {instruction} {answer} [EOS]      loss on {answer} [EOS] only

The pairs are drawn from the TRAIN split of captioning videos with
:func:`vlstudy.humaneval.instructions.instruction_pairs`: per video a few aspects (describe it, what is done,
the moving object, the place, the scene text, the category, the intent), each asked with a *train* template and
answered with a reference answer built from mini-Youku's ground truth. The rating package asks *eval* templates,
whose wording is disjoint from these (:func:`~vlstudy.humaneval.instructions.templates`), so the evaluation stays
zero-shot in its wording.

What trains: the video encoder and the visual abstractor (as in every mPLUG-video task of the kit). The causal LM
stays frozen, as in Youku-mPLUG (its decoder is frozen in pre-training and downstream; the paper's instruction-
following ability comes from BLOOMZ, an LM that was instruction-tuned before). The kit's toy LM never read an
instruction, so the visual prefix must carry, besides the video, what steers the frozen LM from an instruction to
its answer; it cannot read the instruction (the abstractor's queries attend to the video only), so what an answer
says about the instruction comes from the LM reading the instruction after the prefix.

Every responder is tuned identically (same pairs, same order, same steps); they differ only in the weights they
start from (`InstructionTuningConfig.pretrained`: the pre-trained checkpoint, or the same architecture with the
video side from scratch). Each video's pairs are all used in the step that draws the video: the clip is repeated
once per pair, so a batch of B videos holds about ``B * per_video`` sequences.

Outputs in ``paths.out``: ``model/`` (``save_pretrained``, the LM left out), ``pairs.csv`` (the training pairs),
``examples.csv`` (answers to eval-template instructions on a few val videos) and ``train_log.jsonl``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch

from vlstudy import io
from vlstudy.config import check_positive
from vlstudy.data.datasets import collate_videos
from vlstudy.distributed import is_main_process
from vlstudy.humaneval.instructions import (
    InstructionPair,
    InstructionPairsConfig,
    VideoTruth,
    instruction_pairs,
    read_truth,
    sample_grounded_items,
)
from vlstudy.humaneval.protocol import ProtocolConfig
from vlstudy.models.mplug_video import MPLUGVideoModel
from vlstudy.tasks.common import (
    PhaseTimer,
    TaskPaths,
    TaskResult,
    VideoInputConfig,
    load_model,
    load_split,
    model_train_config,
    predict,
    video_dataset,
    zero_loss,
)
from vlstudy.train.config import recipe_train
from vlstudy.train.logging import publish_log
from vlstudy.train.trainer import TrainConfig, Trainer

__all__ = ["CONFIG", "InstructionTuningConfig", "InstructionTuningParams", "truths_of", "training_pairs",
           "instruction_loss", "run"]


@dataclass
class InstructionTuningConfig:
    """Attributes:
        init: the mPLUG-video folder to start from (its architecture always; its weights when pretrained).
        pretrained: load the weights of `init` (False: the same architecture, video side from scratch).
        truth: mini-Youku's ground-truth table, from which the answers are built.
        pairs: instruction-tuning pairs per training video, and their aspects.
        videos: captioning train videos used (None: all of them).
        num_frames: frames per clip (the pre-trained model's 4).
        decode: frame decoding and caching.
        train: optimisation.
        examples: val videos answered after training (eval-template instructions), for the report.
        max_new_tokens: longest example answer in tokens (characters).
        seed: the pairs, the item randomness and the examples.
        nproc: processes the stage launches this task on (torchrun, one per GPU); 1 runs it in the notebook's
            kernel.
    """

    init: str = "checkpoints/pretrain_mplug_video/model"
    pretrained: bool = True
    truth: str = "data/mini_youku/ground_truth.csv"
    pairs: InstructionPairsConfig = field(default_factory=InstructionPairsConfig)
    videos: int | None = None
    num_frames: int = 4
    decode: VideoInputConfig = field(default_factory=VideoInputConfig)
    train: TrainConfig = field(default_factory=recipe_train)
    examples: int = 4
    max_new_tokens: int = 40
    seed: int = 0
    nproc: int = 1

    def __post_init__(self):
        check_positive(self, "num_frames", "max_new_tokens", "nproc")
        if self.videos is not None and self.videos < 1:
            raise ValueError(f"videos must be >= 1 or None (all), got {self.videos}")
        if self.examples < 0:
            raise ValueError(f"examples must be >= 0, got {self.examples}")


CONFIG = InstructionTuningConfig


def truths_of(records: pd.DataFrame, truth: str | Path, split: str) -> list[VideoTruth]:
    """The truth of every video of `records` (the prepared captioning `split`), in record order.

    Raises:
        KeyError: a video of the split that the ground-truth table does not know (named).
    """
    by_id = {t.video_id: t for t in read_truth(truth, task="captioning", split=split)}
    missing = [v for v in records["video_id"] if v not in by_id]
    if missing:
        raise KeyError(f"{truth}: no ground truth for captioning {split} video {missing[0]!r} "
                       f"({len(missing)} of {len(records)} missing)")
    return [by_id[v] for v in records["video_id"]]


def training_pairs(records: pd.DataFrame, config: InstructionTuningConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(records of the videos that train, one row per pair) from the prepared captioning TRAIN split.

    The first ``config.videos`` videos (all when None) in split order; pairs drawn with ``config.seed`` by
    `instruction_pairs`, so every responder trains on the same pairs.

    Returns:
        The videos' records (those with at least one pair) and the pairs table: ``video_id``, ``aspect``,
        ``instruction``, ``answer``, and ``item``, the record row (0-based) of its video.
    """
    records = records.head(config.videos) if config.videos else records
    pairs = instruction_pairs(truths_of(records, config.truth, "train"), config.pairs,
                              np.random.default_rng(config.seed))
    table = pd.DataFrame([vars(p) for p in pairs], columns=[f for f in InstructionPair.__dataclass_fields__])
    kept = records[records["video_id"].isin(set(table["video_id"]))].reset_index(drop=True)
    row = {v: k for k, v in enumerate(kept["video_id"])}
    return kept, table.assign(item=table["video_id"].map(row))


def instruction_loss(model: MPLUGVideoModel, video: torch.Tensor | None, pairs: list[list[tuple[str, str]]]
                     ) -> dict[str, torch.Tensor]:
    """Token-mean LM loss of every (instruction, answer) pair of every video of a batch.

    Args:
        model: mPLUG-video.
        video: (B, T, C, H, W) clips, or None when the whole batch was unreadable (then a zero loss).
        pairs: per video of the batch, its (instruction, answer) pairs (at least one).

    Returns:
        ``{"loss"}``: the mean over the answer tokens and EOS of all ``sum(len(p) for p in pairs)`` sequences; each
        clip is repeated once per pair of its video.
    """
    if video is None:
        return zero_loss(model)
    counts = torch.tensor([len(p) for p in pairs], device=video.device)
    repeated = video.repeat_interleave(counts, dim=0)  # (P, T, C, H, W), P pairs
    prompts, answers = zip(*(pair for video_pairs in pairs for pair in video_pairs))
    tokens = model.tokenize(prompts, answers)  # (P, L)
    return {"loss": model(repeated, tokens.input_ids, tokens.attention_mask, tokens.labels).loss}


def _examples(model: MPLUGVideoModel, config: InstructionTuningConfig, paths: TaskPaths) -> pd.DataFrame:
    """Answers to eval-template instructions on the first `config.examples` val videos (one item each)."""
    records = load_split(paths.data, "captioning", "val").head(config.examples)
    items = sample_grounded_items(truths_of(records, config.truth, "val"),
                                  ProtocolConfig(n_videos=len(records), n_instructions=len(records)),
                                  np.random.default_rng(config.seed))
    by_video = {it.video_id: it for it in items}
    dataset = video_dataset(records, model.config.video, config.decode, "eval", config.seed, paths.cache)
    table = predict(model, dataset, max(1, config.examples), lambda m, b: {"answer": m.generate(
        b["video"], [by_video[v].instruction for v in b["video_id"]], max_new_tokens=config.max_new_tokens)},
        desc="examples")
    if table is None:
        return table
    return pd.DataFrame({"video_id": table["video_id"], "aspect": [by_video[v].aspect for v in table["video_id"]],
                         "instruction": [by_video[v].instruction for v in table["video_id"]],
                         "answer": table["answer"], "reference": [by_video[v].reference for v in table["video_id"]]})


def run(config: InstructionTuningConfig, paths: TaskPaths) -> TaskResult | None:
    timer = PhaseTimer()
    model = load_model(MPLUGVideoModel, config.init, config.pretrained, config.num_frames)
    records, pairs = training_pairs(load_split(paths.data, "captioning", "train"), config)
    by_item = pairs.groupby("item")[["instruction", "answer"]].apply(
        lambda g: list(zip(g["instruction"], g["answer"]))).to_dict()
    with timer("decode"):
        train_set = video_dataset(records, model.config.video, config.decode, "train", config.seed, paths.cache)
    with timer("train"):
        summary = Trainer(model, model_train_config(model, config.train), train_set, collate_videos,
                          lambda m, b: instruction_loss(m, b["video"], [by_item[i] for i in b["index"]]),
                          Path(paths.work)).fit()
    examples = None
    if config.examples:
        with timer("evaluate"):
            examples = _examples(model, config, paths)
    if not is_main_process():
        return None
    out = Path(paths.out)
    with timer("write"):
        model.save_pretrained(out / "model")
        io.write_table(out / "pairs.csv", pairs)
        if examples is not None:
            io.write_table(out / "examples.csv", examples)
        publish_log(summary.log_path, out / "train_log.jsonl")
    return TaskResult(
        metrics={"train_loss": summary.losses.get("loss")},
        protocol={"split": "captioning train", "videos": len(records), "pairs": len(pairs),
                  "aspects": pairs["aspect"].value_counts().to_dict(), "frames": model.config.video.num_frames,
                  "sampler": "rand (train)", "init": config.init if config.pretrained else "from scratch",
                  "format": "[video prefix] [BOS] instruction answer [EOS], loss on answer + EOS",
                  "templates": "train templates (disjoint from the evaluation's)"},
        training={"steps": summary.final_step, "train_loss": summary.losses.get("loss"),
                  "trainable_parameters": model.num_trainable, "total_parameters": model.num_total,
                  "samples_per_s": summary.samples_per_s, "skipped_videos": summary.skipped_videos},
        timings=timer.seconds)


def _default_models() -> dict[str, InstructionTuningConfig]:
    return {"mplug_video": InstructionTuningConfig(),
            "mplug_video_no_pretrain": InstructionTuningConfig(pretrained=False)}


@dataclass
class InstructionTuningParams:
    """``instruction_tuning``: a DVC matrix, one instruction-tuning run per model that answers the human evaluation.

    Attributes:
        model: the cell a run trains (the DVC matrix sets it; a key of `models`).
        models: each model's run (identical but for the weights it starts from).
    """

    MATRIX: ClassVar[tuple[str, ...]] = ("model",)

    model: str = "mplug_video"
    models: dict[str, InstructionTuningConfig] = field(default_factory=_default_models)

    def __post_init__(self) -> None:
        if self.model not in self.models:
            raise ValueError(f"model {self.model!r} is not one of {', '.join(self.models)}")

    def cell(self) -> InstructionTuningConfig:
        """The run of the cell `model`."""
        return self.models[self.model]

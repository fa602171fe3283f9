"""Panda-70M's multimodal student captioner and Table 4 (Chen et al., CVPR 2024, Sec. 3.4, Table 4, App. D).

The student (:class:`vlstudy.panda.student_captioner.StudentCaptioner`: mPLUG-video's vision branch + a text
Q-former over the metadata, the text branch's gradient blocked from the vision side) starts from the captioning
stage's mPLUG-video and learns the captions the fine-tuned selector picked for the ``pool`` clips
(:mod:`vlstudy.tasks.panda_captions`), seeing each clip's designed metadata with probability ``p_text`` per step
("we also randomly input the metadata and subtitles into the model during training"). It never sees a reference.

Table 4 on the ``eval`` clips (captioning val): every teacher, all teachers (the fine-tuned selector's pick), the
student on video only and on video + text, by

* the **oracle-preference ratio**: the share of clips on which a system's caption is the best of all systems'
  captions by CIDEr against the references (ties share the clip; :func:`vlstudy.panda.teachers.preference`), the
  stand-in for the paper's user study;
* **caption metrics** against the references: BLEU-4, ROUGE-L, METEOR, CIDEr (:mod:`vlstudy.metrics.captioning`)
  and BERTScore F1 when ``bertscore_model`` names a local model folder (otherwise no such column: the table says
  why);

each with a 95 % bootstrap interval over clips. Findings (paired bootstrap over clips, preference ratio): the
video-only student beats every single teacher (the paper's +7.7 points: 18.4 vs its best teacher's 10.7), and
the student with text beats it on video only (21.4 vs 18.4).

Outputs in ``paths.out``: ``student/`` (the captioner without the frozen LM, and the text branch),
``predictions_eval.csv`` (every system's caption of every clip) and ``per_item_preference.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from vlstudy import io
from vlstudy.config import check_positive
from vlstudy.data.datasets import collate_videos
from vlstudy.data.prepared import load_split
from vlstudy.metrics.base import Mean, MetricResult
from vlstudy.metrics.bootstrap import check_n_boot, paired_bootstrap_ci
from vlstudy.metrics.captioning import caption_metrics
from vlstudy.metrics.verdict import verdict_reason
from vlstudy.models.mplug_video import MPLUGVideoModel
from vlstudy.panda.bertscore import BertScorer
from vlstudy.panda.selector import cider_scores
from vlstudy.panda.student import TextQFormerConfig
from vlstudy.panda.student_captioner import StudentCaptioner
from vlstudy.panda.teachers import (
    TEACHERS,
    metadata_prompt,
    preference,
    score_candidates,
    system_scores,
    unique_candidates,
)
from vlstudy.tasks.common import (
    PhaseTimer,
    TaskPaths,
    TaskResult,
    VideoInputConfig,
    interval_summary,
    load_model,
    predict,
    seeded_generator,
    zero_loss,
)
from vlstudy.tasks.panda_teachers import SETS, eval_dataset
from vlstudy.train.config import recipe_train
from vlstudy.train.trainer import TrainConfig, Trainer

__all__ = ["StudentTextConfig", "PandaStudentParams", "SYSTEMS", "TEACHERS", "NO_BERTSCORE", "set_records",
           "look_inside", "run"]

STUDENTS = ("student_video", "student_video_text")
SYSTEMS = (*TEACHERS, "all_teachers", *STUDENTS)
NO_BERTSCORE = "BERTScore: no local model folder given (bertscore_model), so no BERTScore column"


@dataclass
class StudentTextConfig:
    """The text branch: a Q-former over the metadata's LM token embeddings.

    Attributes:
        num_queries: text tokens it hands the LM, however long the metadata.
        hidden_size: width inside the Q-former.
        num_layers: Q-former blocks.
        num_heads: attention heads; divides hidden_size.
        max_metadata_tokens: longer metadata loses its tail.
    """

    num_queries: int = 8
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    max_metadata_tokens: int = 96


@dataclass
class PandaStudentParams:
    """``panda_student`` (Panda-70M Table 4): the student learns the selected captions; every system compared.

    Attributes:
        captions: the panda_captions stage's folder (teacher captions, selections, designed metadata).
        init: the mPLUG-video folder the student's vision branch starts from (its frozen LM comes along).
        text: the text branch.
        p_text: share of training samples that get their metadata (the rest train the vision branch).
        train: optimisation on the pool clips' selected captions (the new text branch at lr, the pre-trained
            captioner at 0.1 lr, as the official rule for pre-trained weights).
        num_beams: beam width at decoding (1 = greedy, as the teachers).
        max_new_tokens: longest caption in tokens.
        eval_batch_size: clips per batch at decoding.
        bertscore_model: a local BERT-style model folder for BERTScore; null = no BERTScore column.
        bertscore_layer: its hidden layer that embeds tokens (null: the last).
        decode: frame decoding and caching.
        n_boot: bootstrap resamples (intervals over clips).
        seed: metadata draws per step, item randomness, the bootstrap.
        nproc: processes (this stage runs in one).
    """

    captions: str = "checkpoints/panda_captions"
    init: str = "checkpoints/finetune_captioning/mplug_video/model"
    text: StudentTextConfig = field(default_factory=StudentTextConfig)
    p_text: float = 0.5
    train: TrainConfig = field(default_factory=lambda: recipe_train(lr=1e-3, epochs=2, warmup_steps=10,
                                                                     lr_scale={"captioner": 0.1}))
    num_beams: int = 1
    max_new_tokens: int = 32
    eval_batch_size: int = 32
    bertscore_model: str | None = None
    bertscore_layer: int | None = None
    decode: VideoInputConfig = field(default_factory=VideoInputConfig)
    n_boot: int = 1000
    seed: int = 0
    nproc: int = 1

    def __post_init__(self):
        check_n_boot(self.n_boot)
        check_positive(self, "num_beams", "max_new_tokens", "eval_batch_size")
        if not 0 <= self.p_text <= 1 or self.nproc != 1:
            raise ValueError(f"p_text must be in [0, 1] and nproc 1 (one process), got {self.p_text}, {self.nproc}")


def set_records(data: str, name: str, ids: list[str]) -> pd.DataFrame:
    """The prepared records of set `name` for the clips `ids`, in that order."""
    table = load_split(data, *SETS[name]).set_index("video_id", drop=False)
    return table.loc[ids].reset_index(drop=True)


def look_inside(student: StudentCaptioner, video: torch.Tensor, clips: pd.DataFrame) -> pd.DataFrame:
    """The student's LM prefix for a few clips (video (B, T, C, H, W); `clips` with their designed metadata),
    without and with the metadata: one row per clip and mode with the prefix's shape and where its tokens come from."""
    prompts = [metadata_prompt(d, s) for d, s in zip(clips["description"], clips["subtitles"])]
    rows = []
    with torch.no_grad():
        for with_text in (False, True):
            prefixes = student.prefix(video, prompts, torch.full((len(prompts),), with_text))
            for vid, prompt, prefix in zip(clips["video_id"], prompts, prefixes):
                rows.append({"clip": vid, "metadata given": with_text, "LM prefix": tuple(prefix.shape),
                             "tokens": f"{student.captioner.config.abstractor.num_queries} video"
                             + (f" + {student.text_branch.config.num_queries} text (from "
                                f"{min(len(prompt), student.max_metadata_tokens)} metadata characters)"
                                if with_text else ""),
                             "metadata": prompt if with_text else ""})
    return pd.DataFrame(rows)


def _train(config: PandaStudentParams, student: StudentCaptioner, dataset, prompts: list[str], targets: list[str],
           work: Path) -> dict:
    def loss(m: StudentCaptioner, batch: dict) -> dict[str, torch.Tensor]:
        if batch["video"] is None:
            return zero_loss(m)
        draw = torch.rand(len(batch["index"]), generator=seeded_generator(batch["index"], config.seed))
        has_text = draw < config.p_text
        return {"loss": m.loss(batch["video"], [prompts[i] for i in batch["index"]], has_text,
                               [targets[i] for i in batch["index"]])}

    summary = Trainer(student, config.train, dataset, collate_videos, loss, work).fit()
    return {"steps": summary.final_step, "train_loss": summary.losses.get("loss"),
            "samples_per_s": summary.samples_per_s, "skipped_videos": summary.skipped_videos,
            "trainable_parameters": sum(p.numel() for p in student.parameters() if p.requires_grad)}


def _decode(config: PandaStudentParams, student: StudentCaptioner, dataset, prompts: list[str]) -> dict[str, list]:
    def fn(m: StudentCaptioner, batch: dict) -> dict[str, list[str]]:
        texts = [prompts[i] for i in batch["index"]]
        size = len(texts)
        return {name: m.generate(batch["video"], texts, torch.full((size,), with_text), config.num_beams,
                                 max_new_tokens=config.max_new_tokens)
                for name, with_text in zip(STUDENTS, (False, True))}

    table = predict(student, dataset, config.eval_batch_size, fn, desc="student")
    return {name: [str(c) for c in table[name]] for name in STUDENTS}


def _bertscore(config: PandaStudentParams, systems: dict[str, list[str]], ids, refs) -> dict[str, MetricResult]:
    scorer = BertScorer(config.bertscore_model, config.bertscore_layer)
    out = {}
    for name, caps in systems.items():
        values = scorer(caps, refs)
        out[name] = MetricResult({"BERTScore": float(values.mean()), "n_items": len(values)},
                                 pd.DataFrame({"item_id": ids, "BERTScore": values}), {"BERTScore": Mean(values)})
    return out


def _findings(pref: MetricResult, seed: int, n_boot: int) -> dict:
    credit = {s: 100.0 * pref.per_item[s].to_numpy() for s in SYSTEMS}
    rng = np.random.default_rng(seed)
    margins = {t: paired_bootstrap_ci(credit["student_video"], credit[t], rng=rng, n_boot=n_boot) for t in TEACHERS}
    closest = min(margins, key=lambda t: margins[t].estimate)
    text = paired_bootstrap_ci(credit["student_video_text"], credit["student_video"], rng=rng, n_boot=n_boot)
    listed = "; ".join(f"{t} {m.estimate:+.1f} [{m.low:.1f}, {m.high:.1f}]" for t, m in margins.items())
    return {
        "panda_student_beats_every_teacher": {
            "claim": "the student (video only) beats every single teacher", "ours": margins[closest].estimate,
            "low": margins[closest].low, "high": margins[closest].high,
            "holds": all(m.low > 0 for m in margins.values()),
            "note": f"student (video) minus each teacher, preference-ratio points, paired bootstrap over clips: "
                    f"{listed}; ours/low/high are the closest teacher's ({closest})"},
        "panda_student_text_helps": {
            "claim": "the student with text beats the student on video only", "ours": text.estimate,
            "low": text.low, "high": text.high,
            "holds": text.low > 0, "note": "student (video + text) minus student (video), preference-ratio points, "
                                           "paired bootstrap over clips: "
                                           + verdict_reason(text.estimate, text.low, text.high)},
    }


def run(config: PandaStudentParams, paths: TaskPaths) -> TaskResult:
    timer = PhaseTimer()
    captions = Path(config.captions)
    pool = pd.read_csv(captions / "captions_pool.csv", keep_default_na=False)
    evaluation = pd.read_csv(captions / "captions_eval.csv", keep_default_na=False)
    records = {"pool": set_records(paths.data, "pool", pool["video_id"].astype(str).tolist()),
               "eval": set_records(paths.data, "eval", evaluation["video_id"].astype(str).tolist())}
    prompts = {name: [metadata_prompt(d, s) for d, s in zip(table["description"], table["subtitles"])]
               for name, table in (("pool", pool), ("eval", evaluation))}
    captioner = load_model(MPLUGVideoModel, config.init, True, 16)
    t = config.text
    student = StudentCaptioner(captioner, TextQFormerConfig(hidden_size=t.hidden_size, num_queries=t.num_queries,
                                                            num_layers=t.num_layers, num_heads=t.num_heads),
                               t.max_metadata_tokens)
    encoder = captioner.config.video
    datasets = {name: eval_dataset(r, encoder, config.decode, config.seed, paths.cache) for name, r in records.items()}
    with timer("train"):
        training = _train(config, student, datasets["pool"], prompts["pool"], pool["selected"].astype(str).tolist(),
                          Path(paths.work))
    with timer("decode"):
        students = _decode(config, student, datasets["eval"], prompts["eval"])
    systems = {**{t: evaluation[t].astype(str).tolist() for t in TEACHERS},
               "all_teachers": evaluation["selected"].astype(str).tolist(), **students}
    ids = records["eval"]["video_id"].tolist()
    refs = [list(c) for c in records["eval"]["captions"]]
    with timer("evaluate"):
        texts, authors = unique_candidates(systems)
        pref = preference(system_scores(authors, score_candidates(texts, refs, {"CIDEr": cider_scores})["CIDEr"],
                                        list(SYSTEMS)), list(SYSTEMS), ids)
        results = {s: caption_metrics(dict(zip(ids, caps)), dict(zip(ids, refs))) for s, caps in systems.items()}
        metrics = {s: interval_summary(r, config.seed, config.n_boot) for s, r in results.items()}
        ratio = interval_summary(pref, config.seed, config.n_boot)
        for s in SYSTEMS:
            metrics[s]["preference"] = ratio[s]
        if config.bertscore_model is not None:
            for s, r in _bertscore(config, systems, ids, refs).items():
                metrics[s].update(interval_summary(r, config.seed, config.n_boot))
        findings = _findings(pref, config.seed, config.n_boot)
    with timer("write"):
        out = Path(paths.out)
        student.save(out / "student")
        io.write_table(out / "predictions_eval.csv", pd.DataFrame({"video_id": ids, **systems}))
        io.write_table(out / "per_item_preference.csv", pref.per_item)
    return TaskResult(
        metrics={"systems": metrics, "findings": findings},
        protocol={"split": "captioning val", "clips": len(ids), "train_clips": len(pool),
                  "preference": "share of clips whose caption is the best of all systems' by CIDEr against the "
                                "references (ties share the clip)",
                  "bertscore": config.bertscore_model or NO_BERTSCORE, "decoding": f"beam {config.num_beams}",
                  "frames": 16, "p_text": config.p_text, "interval": f"95% bootstrap over clips ({config.n_boot})"},
        training=training, timings=timer.seconds)

"""Panda-70M's cross-modality teachers and fine-grained caption selector (Chen et al., CVPR 2024, Sec. 3.2-3.3).

Four teachers read different inputs (:data:`vlstudy.panda.teachers.TEACHERS`): ``video`` is the
``finetune_captioning`` model (16 frames); ``frame`` (1 frame) and ``video_text`` (16 frames + the metadata prompt)
start from it and are trained further here on the captioning train clips, reading their own inputs; ``text`` is the
nearest-neighbour caption by metadata. The clips'
metadata is designed to be truthful, uninformative or misleading per clip (:mod:`vlstudy.panda.teachers`), so
that which teacher is best depends on the clip. The sets of clips (``train`` / ``select`` / ``pool`` / ``eval``)
are :mod:`vlstudy.tasks.panda_teachers`'s.

* **Fig. 3.** On the ``eval`` clips, the oracle (the teacher caption with the best CIDEr against the references)
  gives each teacher's selective rate, with 95 % intervals over clips, overall and by the kind of metadata.
* **Selector.** The ALPRO-style model of ``pretrain_alpro`` picks a clip's caption by its matching score
  (:mod:`vlstudy.panda.selection`): zero-shot, then fine-tuned on the ``select`` clips (the oracle's choice against
  their one caption) with the weighted contrastive loss (own other candidates 1, other clips' 0.01) + matching.
  R@1 against the oracle and "any acceptable" R@1 (the best by CIDEr, BLEU-4 or ROUGE-L: three "annotators") on
  ``eval``; the paired difference decides the finding. The fine-tuned selector then picks the captions of the
  ``pool`` clips, the student's training set (:mod:`vlstudy.tasks.panda_student`).

Teachers decode greedily by default (``num_beams``): the stage captions every clip four times on a CPU budget.
Outputs in ``paths.out``: ``captions_<set>.csv`` (per clip: each teacher's caption, the selected one, the designed
metadata and its relevance; ``eval`` also the oracle, the selectors' picks and every teacher's CIDEr) and
``selector/`` (the fine-tuned selector).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from vlstudy import io
from vlstudy.config import check_positive
from vlstudy.data.datasets import collate_videos
from vlstudy.metrics.bootstrap import check_n_boot, paired_bootstrap_ci
from vlstudy.metrics.verdict import verdict_reason
from vlstudy.models.alpro import ALPROForPretraining
from vlstudy.models.mplug_video import MPLUGVideoModel
from vlstudy.panda.selection import FrameSubset, candidate_scores, selection_loss
from vlstudy.panda.selector import cider_scores, selection_metrics
from vlstudy.panda.teachers import (
    TEACHERS,
    MetadataDesign,
    MetadataNNCaptioner,
    oracle_choice,
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
    model_train_config,
    predict,
    zero_loss,
)
from vlstudy.tasks.panda_teachers import (
    ClipSets,
    TeacherConfig,
    clip_labels,
    eval_dataset,
    generate_captions,
    load_clip_sets,
    train_teacher,
)
from vlstudy.train.config import recipe_train
from vlstudy.train.trainer import TrainConfig, Trainer

__all__ = ["SelectorConfig", "PandaCaptionsParams", "run"]


@dataclass
class SelectorConfig:
    """Attributes:
        init: the pre-trained ALPRO-style model folder.
        frames: positions of the 16 cached frames it reads (ALPRO's 4: every fourth).
        train: its fine-tuning on the select clips.
        hard_weight: contrastive weight of a clip's other candidates (Panda: the larger one).
        other_weight: contrastive weight of other clips' captions (Panda: 0.01).
    """

    init: str = "checkpoints/pretrain_alpro/model"
    frames: list[int] = field(default_factory=lambda: [2, 6, 10, 14])
    train: TrainConfig = field(default_factory=lambda: recipe_train(lr=1e-4, epochs=5, warmup_steps=10))
    hard_weight: float = 1.0
    other_weight: float = 0.01


@dataclass
class PandaCaptionsParams:
    """``panda_captions`` (Panda-70M Fig. 3 and Sec. 3.3): four teachers caption clips, a selector picks one.

    Attributes:
        video_teacher: the video teacher (16 frames): the captioning stage's model, trained on the train clips.
        frame_teacher: the 1-frame teacher: start (the video teacher, read one frame at a time) and training.
        frame_position: which of the 16 cached frames the frame teacher reads (8: the middle).
        video_text_teacher: the video + metadata teacher: start and training.
        metadata: how often each clip's metadata is truthful, chit-chat or another class's.
        ground_truth: mini-Youku's ground truth (classes, so that misleading metadata is another class's); null
            for real data.
        selector: the ALPRO-style selector and its fine-tuning.
        select_clips: retrieval val clips the selector is fine-tuned on (null: all).
        pool_clips: retrieval train clips captioned for the student (null: all).
        num_beams: beam width of the teachers' decoding (1 = greedy).
        max_new_tokens: longest caption in tokens.
        eval_batch_size: clips per batch when captioning and scoring.
        decode: frame decoding and caching.
        n_boot: bootstrap resamples (intervals over clips).
        seed: metadata draws, item randomness, the bootstrap.
        nproc: processes (this stage runs in one).
    """

    video_teacher: str = "checkpoints/finetune_captioning/mplug_video/model"
    frame_teacher: TeacherConfig = field(default_factory=lambda: TeacherConfig(
        init="checkpoints/finetune_captioning/mplug_video/model", train=recipe_train(epochs=2)))
    frame_position: int = 8
    video_text_teacher: TeacherConfig = field(default_factory=lambda: TeacherConfig(
        init="checkpoints/finetune_captioning/mplug_video/model", train=recipe_train(lr=1e-4, epochs=1)))
    metadata: MetadataDesign = field(default_factory=MetadataDesign)
    ground_truth: str | None = "data/mini_youku/ground_truth.csv"
    selector: SelectorConfig = field(default_factory=SelectorConfig)
    select_clips: int | None = 300
    pool_clips: int | None = 600
    num_beams: int = 1
    max_new_tokens: int = 32
    eval_batch_size: int = 32
    decode: VideoInputConfig = field(default_factory=VideoInputConfig)
    n_boot: int = 1000
    seed: int = 0
    nproc: int = 1

    def __post_init__(self):
        check_n_boot(self.n_boot)
        check_positive(self, "num_beams", "max_new_tokens", "eval_batch_size", "select_clips", "pool_clips")
        if self.nproc != 1:
            raise ValueError(f"nproc must be 1 (the Panda stages run in one process), got {self.nproc}")
        if not 0 <= self.frame_position < 16 or any(not 0 <= f < 16 for f in self.selector.frames):
            raise ValueError("frame_position and selector.frames index the 16 cached frames (0..15)")


def _teachers(config: PandaCaptionsParams, sets: ClipSets, paths: TaskPaths, timer: PhaseTimer) -> dict:
    """teacher -> (its model or the text captioner, the cached frames it reads or None for all, whether it reads
    the metadata prompt)."""
    work = Path(paths.work)
    with timer("train"):
        frame = train_teacher(config.frame_teacher, sets, 1, [config.frame_position], False, config.decode,
                              config.seed, work / "frame_teacher", paths.cache)
        video_text = train_teacher(config.video_text_teacher, sets, 16, None, True, config.decode, config.seed,
                                   work / "video_text_teacher", paths.cache)
    text = MetadataNNCaptioner(sets.prompts("train"), [c[0] for c in sets.records["train"]["captions"]])
    video = load_model(MPLUGVideoModel, config.video_teacher, True, 16)
    return {"video": (video, None, False), "frame": (frame, [config.frame_position], False),
            "text": (text, None, True), "video_text": (video_text, None, True)}


def _caption_set(config: PandaCaptionsParams, teachers: dict, sets: ClipSets, name: str, paths: TaskPaths,
                 encoder) -> dict[str, list[str]]:
    """teacher -> one caption per clip of set `name`."""
    prompts = sets.prompts(name)
    dataset = eval_dataset(sets.records[name], encoder, config.decode, config.seed, paths.cache)
    out = {}
    for teacher, (model, frames, prompted) in teachers.items():
        if isinstance(model, MetadataNNCaptioner):
            out[teacher] = model(prompts)
            continue
        out[teacher] = generate_captions(
            model, FrameSubset(dataset, frames) if frames else dataset, config.eval_batch_size,
            prompts if prompted else None, lambda m, video, p: m.generate(
                video, p, num_beams=config.num_beams, max_new_tokens=config.max_new_tokens), f"{teacher}: {name}")
    return out


def _selector_scores(model, dataset, texts: list[list[str]], batch_size: int) -> list[np.ndarray]:
    """Per clip the selector's matching score of each of its candidates."""
    table = predict(model, dataset, batch_size, lambda m, b: {"vtm": candidate_scores(
        m, b["video"], [texts[i] for i in b["index"]])["vtm"]}, desc="selector")
    return [np.asarray(s) for s in table["vtm"]]


def _fine_tune_selector(config: PandaCaptionsParams, model, dataset, texts, positive, work: Path) -> dict:
    def loss(m, batch):
        if batch["video"] is None:
            return zero_loss(m, "vtc", "vtm")
        return selection_loss(m, batch["video"], [texts[i] for i in batch["index"]],
                              [int(positive[i]) for i in batch["index"]], config.selector.hard_weight,
                              config.selector.other_weight)

    summary = Trainer(model, model_train_config(model, config.selector.train), dataset, collate_videos, loss,
                      work).fit()
    return {"steps": summary.final_step, "loss": summary.losses.get("loss"), "vtc": summary.losses.get("vtc"),
            "vtm": summary.losses.get("vtm")}


def _finding(name: str, claim: str, interval, holds: bool, note: str) -> dict:
    return {name: {"claim": claim, "ours": float(interval[0]), "low": float(interval[1]),
                   "high": float(interval[2]), "holds": bool(holds), "note": note}}


def run(config: PandaCaptionsParams, paths: TaskPaths) -> TaskResult:
    timer = PhaseTimer()
    sets = load_clip_sets(paths.data, {"select": config.select_clips, "pool": config.pool_clips}, config.metadata,
                          config.seed, clip_labels(config.ground_truth))
    teachers = _teachers(config, sets, paths, timer)
    encoder = teachers["video"][0].config.video
    captions = {}
    for name in ("select", "eval", "pool"):
        with timer("caption"):
            captions[name] = _caption_set(config, teachers, sets, name, paths, encoder)
    with timer("evaluate"):  # the oracle: the select clips' one caption, the eval clips' references
        unique = {name: unique_candidates(captions[name]) for name in ("select", "eval", "pool")}
        refs = {name: [list(c) for c in sets.records[name]["captions"]] for name in ("select", "eval")}
        select_scores = score_candidates(unique["select"][0], refs["select"], {"CIDEr": cider_scores})
        positive, _ = oracle_choice(select_scores)
        eval_scores = score_candidates(unique["eval"][0], refs["eval"])
        oracle, acceptable = oracle_choice(eval_scores)
        teacher_cider = system_scores(unique["eval"][1], eval_scores["CIDEr"], list(TEACHERS))
        ids = sets.records["eval"]["video_id"].tolist()
        rates = preference(teacher_cider, list(TEACHERS), ids)
    selector = load_model(ALPROForPretraining, config.selector.init, True, len(config.selector.frames))
    datasets = {name: eval_dataset(sets.records[name], encoder, config.decode, config.seed, paths.cache,
                                   config.selector.frames) for name in ("select", "eval", "pool")}
    picks, r_at_1 = {}, {}
    with timer("evaluate"):
        zero_shot = _selector_scores(selector, datasets["eval"], unique["eval"][0], config.eval_batch_size)
    with timer("train"):
        selector_training = _fine_tune_selector(config, selector, datasets["select"], unique["select"][0], positive,
                                                Path(paths.work) / "selector")
    with timer("evaluate"):
        fine_tuned = _selector_scores(selector, datasets["eval"], unique["eval"][0], config.eval_batch_size)
        pool_scores = _selector_scores(selector, datasets["pool"], unique["pool"][0], config.eval_batch_size)
        for name, scores in (("zero_shot", zero_shot), ("fine_tuned", fine_tuned)):
            result = selection_metrics(scores, oracle, acceptable, ids)
            r_at_1[name] = result
            picks[name] = result.per_item["picked"].to_numpy()
        gain = paired_bootstrap_ci(r_at_1["fine_tuned"].per_item["R@1"], r_at_1["zero_shot"].per_item["R@1"],
                                   rng=np.random.default_rng(config.seed), n_boot=config.n_boot)
        top = max(TEACHERS, key=lambda t: rates.summary[t])
        metrics = {"selective_rate": interval_summary(rates, config.seed, config.n_boot),
                   "selector": {n: interval_summary(r, config.seed, config.n_boot) for n, r in r_at_1.items()}}
        top_high = metrics["selective_rate"][top]["high"]
    with timer("write"):
        _write(Path(paths.out), sets, captions, unique, picks, oracle, eval_scores, teacher_cider, pool_scores)
        selector.save_pretrained(Path(paths.out) / "selector")
    findings = {
        **_finding("panda_no_teacher_dominates", "no single teacher gives the best caption for most clips",
                   (rates.summary[top], metrics["selective_rate"][top]["low"], top_high), top_high < 50.0,
                   f"the most selected of {len(TEACHERS)} teachers is {top}; HOLDS when its rate's upper 95 % bound "
                   f"is below 50 % (oracle: best CIDEr against the references; ties share the clip)"),
        **_finding("panda_selector_fine_tuning", "the fine-tuned selector picks the best caption more often than the "
                   "zero-shot one", gain, gain[1] > 0,
                   "fine-tuned minus zero-shot R@1 against the oracle, paired bootstrap over eval clips: "
                   + verdict_reason(*gain)),
    }
    relevance = sets.metadata["eval"]
    truthful = ((relevance["description_relevance"] == "own") & (relevance["subtitles_relevance"] == "own")).to_numpy()
    by_metadata = {kind: {t: float(100 * rates.per_item.loc[mask, t].mean()) for t in TEACHERS}
                   for kind, mask in (("truthful", truthful), ("not_truthful", ~truthful))}
    return TaskResult(
        metrics={**metrics, "selective_rate_by_metadata": by_metadata, "findings": findings},
        protocol={"teachers": TEACHERS, "sets": {n: len(r) for n, r in sets.records.items()},
                  "oracle": "best CIDEr against the references (ties share the clip)",
                  "acceptable": "best by CIDEr, BLEU-4 or ROUGE-L", "selector_score": "matching head (VTM)",
                  "decoding": f"beam {config.num_beams}", "frames": {"video": 16, "frame": 1, "video_text": 16,
                                                                     "selector": len(config.selector.frames)},
                  "truthful_metadata_share": float(truthful.mean()),
                  "interval": f"95% bootstrap over eval clips ({config.n_boot})"},
        training={"selector": selector_training,
                  "candidates_per_clip": {n: float(np.mean([len(t) for t in u[0]])) for n, u in unique.items()}},
        timings=timer.seconds)


def _write(out: Path, sets: ClipSets, captions, unique, picks, oracle, eval_scores, teacher_cider, pool_scores):
    for name in ("select", "eval", "pool"):
        meta = sets.metadata[name]
        table = pd.DataFrame({"video_id": sets.records[name]["video_id"], **captions[name]})
        table = table.assign(**{c: meta[c].to_numpy() for c in meta.columns if c != "video_id"})
        texts = unique[name][0]
        if name == "eval":
            table["oracle"] = [texts[c][k] for c, k in enumerate(oracle)]
            table["zero_shot_pick"] = [texts[c][k] for c, k in enumerate(picks["zero_shot"])]
            table["selected"] = [texts[c][k] for c, k in enumerate(picks["fine_tuned"])]
            table = table.assign(**{f"cider_{t}": teacher_cider[:, k] for k, t in enumerate(TEACHERS)})
        elif name == "pool":
            table["selected"] = [texts[c][int(np.argmax(s))] for c, s in enumerate(pool_scores)]
        io.write_table(out / f"captions_{name}.csv", table)

"""The human evaluation (Youku-mPLUG §5.4, Fig. 5; appendix A, Figs. 6–8) on the kit's own instruction-tuned models.

The paper asks 65 instructions on 50 sampled videos of three models — VideoLLaMA, mPLUG-Video without and with
Youku-mPLUG pre-training, the latter two instruction-tuned on the same data — and has raters grade every answer
A–D. Here (:class:`PackageConfig`):

1. **Items.** :func:`~vlstudy.humaneval.instructions.sample_grounded_items` draws the instructions on captioning
   VAL videos: each item knows the facts a correct answer states (from mini-Youku's ``ground_truth.csv``) and is
   worded with the *eval* templates, disjoint from the instruction-tuning pairs' wording.
2. **Responders** (:class:`ResponderConfig`, a params entry): by default the instruction-tuned mPLUG-video that
   started from pool pre-training, the same architecture instruction-tuned from scratch (stage
   ``instruction_tuning``), and a language-only control, the pre-trained one answering without its video (its
   visual prefix is then the abstractor's queries alone). Each answers greedily to the prompt
   ``[video prefix] [BOS] {instruction}``, the protocol's format.
3. **Package.** The blinded rating package (``rating.html``, escaped; the key kept apart) for real raters, and,
   beside the key, the items with their checklists (``items.json``) and every answer (``answers.csv``).
4. **Grades.** The rubric (:mod:`~vlstudy.humaneval.rubric`) grades every answer against the truth: the
   automatic rater. The analysis (:mod:`~vlstudy.humaneval.analysis`) then runs twice: on the rubric's grades,
   and on the raters' — real ratings when ``analysis.ratings`` names the page's CSVs, else a SIMULATED panel
   around the rubric, labelled so everywhere.

:func:`pretraining_finding` turns the paper's claim (pre-trained > without pre-training) into the stage's
finding; it is decided on the real raters when there are any, else on the rubric, never on simulated raters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from vlstudy import io
from vlstudy.config import check_positive
from vlstudy.data.transforms import TransformConfig, eval_transform
from vlstudy.data.video import read_clip, sample_frame_indices
from vlstudy.humaneval.analysis import HumanEvalConfig, HumanEvalReport
from vlstudy.humaneval.instructions import GROUNDED_ASPECTS, GroundedItem, sample_grounded_items
from vlstudy.humaneval.protocol import ProtocolConfig, VideoItem, generate_responses, write_package
from vlstudy.models.mplug_video import MPLUGVideoModel
from vlstudy.tasks.common import PhaseTimer, load_model, load_split
from vlstudy.tasks.instruction_tuning import truths_of

__all__ = ["ResponderConfig", "PackageConfig", "HumanEvalParams", "Answers", "default_responders",
           "answer_items", "build_package", "pretraining_finding"]


@dataclass
class ResponderConfig:
    """One system under evaluation.

    Attributes:
        model: a saved (instruction-tuned) mPLUG-video folder.
        use_video: give it the video (False: the same model answering from the instruction alone).
    """

    model: str
    use_video: bool = True


def default_responders() -> dict[str, ResponderConfig]:
    return {
        "mplug_video": ResponderConfig("checkpoints/instruction_tuning/mplug_video/model"),
        "mplug_video_no_pretrain": ResponderConfig("checkpoints/instruction_tuning/mplug_video_no_pretrain/model"),
        "mplug_video_no_video": ResponderConfig("checkpoints/instruction_tuning/mplug_video/model", use_video=False),
    }


@dataclass
class PackageConfig:
    """Attributes:
        protocol: how many instructions on how many val videos (the paper: 65 on 50).
        responders: responder name (as tables and the key record it) → the system.
        truth: mini-Youku's ground-truth table (the items' checklists).
        frames_per_video: frames shown to raters and read by every model ('middle' sampling).
        max_new_tokens: longest answer in tokens (characters).
        batch_size: answers generated per batch.
        qualitative: aspects of the qualitative figure (Figs. 6–8): the first item of each in package order.
        seed: the item sample and the blinding.
    """

    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    responders: dict[str, ResponderConfig] = field(default_factory=default_responders)
    truth: str = "data/mini_youku/ground_truth.csv"
    frames_per_video: int = 4
    max_new_tokens: int = 40
    batch_size: int = 16
    qualitative: list[str] = field(default_factory=lambda: ["overall", "scene_text", "category"])
    seed: int = 0

    def __post_init__(self):
        check_positive(self, "frames_per_video", "max_new_tokens", "batch_size")
        if not self.responders:
            raise ValueError("responders: at least one system must answer")
        unknown = [a for a in self.qualitative if a not in GROUNDED_ASPECTS]
        if unknown:
            raise ValueError(f"qualitative: unknown aspect {unknown[0]!r}; known: {', '.join(GROUNDED_ASPECTS)}")


@dataclass
class Answers:
    """The items and what every responder answered.

    Attributes:
        items: the grounded items, in package order.
        videos: their videos' keyframes, by video id.
        responses: responder → one answer per item.
    """

    items: list[GroundedItem]
    videos: dict[str, VideoItem]
    responses: dict[str, list[str]]

    def table(self) -> pd.DataFrame:
        """One row per (item, responder): item_id, video_id, aspect, instruction, reference, model, answer."""
        return pd.DataFrame([{"item_id": it.item_id, "video_id": it.video_id, "aspect": it.aspect,
                              "instruction": it.instruction, "reference": it.reference, "model": model,
                              "answer": answers[k]}
                             for model, answers in self.responses.items() for k, it in enumerate(self.items)])


def _responders(config: PackageConfig):
    """A `Responder` per configured system; a model folder shared by two systems is loaded once."""
    loaded: dict[str, MPLUGVideoModel] = {}
    for c in config.responders.values():
        if c.model not in loaded:
            loaded[c.model] = load_model(MPLUGVideoModel, c.model, pretrained=True,
                                         num_frames=config.frames_per_video).eval()

    def responder(c: ResponderConfig):
        model = loaded[c.model]
        transform = TransformConfig(image_size=model.config.video.image_size)

        def respond(videos: list[VideoItem], instructions: list[str]) -> list[str]:
            video = torch.stack([eval_transform(v.frames, transform) for v in videos]) if c.use_video else None
            return model.generate(video, instructions, max_new_tokens=config.max_new_tokens)  # video (B, T, C, H, W)

        return respond

    return {name: responder(c) for name, c in config.responders.items()}


def answer_items(config: PackageConfig, data_dir: str | Path, timer: PhaseTimer | None = None) -> Answers:
    """Sample grounded items on the captioning val split and let every responder answer them (greedy)."""
    timer = timer or PhaseTimer()
    records = load_split(data_dir, "captioning", "val").set_index("video_id", drop=False)
    items = sample_grounded_items(truths_of(records, config.truth, "val"), config.protocol,
                                  np.random.default_rng(config.seed))
    with timer("decode"):
        videos = {}
        for video_id in dict.fromkeys(item.video_id for item in items):
            clip = read_clip(records.loc[video_id, "video_path"],
                             lambda n: sample_frame_indices(config.frames_per_video, n, "middle"))
            videos[video_id] = VideoItem(video_id, clip.frames)
    with timer("answer"), torch.no_grad():
        responses = generate_responses(items, videos, _responders(config), batch_size=config.batch_size)
    return Answers(items, videos, responses)


def build_package(config: PackageConfig, data_dir: str | Path, out_dir: Path,
                  timer: PhaseTimer | None = None) -> Answers:
    """Answer the items and write, under `out_dir`: ``package/`` (the blinded rating package), ``key.json`` (its
    key), ``items.json`` (the items with their checklists) and ``answers.csv`` (every answer, named)."""
    timer = timer or PhaseTimer()
    answers = answer_items(config, data_dir, timer)
    with timer("write"):
        out_dir = Path(out_dir)
        write_package(out_dir / "package", out_dir / "key.json", answers.items, list(answers.videos.values()),
                      answers.responses, np.random.default_rng([config.seed, 1]), config.protocol)
        io.write_json(out_dir / "items.json", [it.to_dict() for it in answers.items])
        io.write_table(out_dir / "answers.csv", answers.table())
    return answers


def pretraining_finding(report: HumanEvalReport, rubric_report: HumanEvalReport, better: str,
                        worse: str) -> dict:
    """The finding "pre-training helps instruction following" (Fig. 5) from the claim ``better > worse``.

    Decided on the raters' grades when they are real (``report.panel == "human raters"``), else on the rubric's:
    a simulated panel only adds noise around the rubric, so it never decides.

    Returns:
        ``{"claim", "paper", "ours", "low", "high", "holds", "note"}``: ours = the mean per-item score difference
        (A=3 … D=0) with its bootstrap interval; holds = the ordered comparison's verdict (difference > 0 and
        Holm-corrected Wilcoxon p < alpha).

    Raises:
        KeyError: no such claim in the reports (add it to ``analysis.claims``).
    """
    decider = report if report.panel == "human raters" else rubric_report
    claim = f"{better} > {worse}"
    rows = decider.comparisons[decider.comparisons["claim"] == claim]
    if rows.empty:
        raise KeyError(f"claim {claim!r} is not among analysis.claims ({', '.join(decider.comparisons['claim'])})")
    row = rows.iloc[0]
    holds = row["verdict"] == "HOLDS"
    note = (f"decided on the {decider.panel}'s grades of the kit's own answers ({row['n_items']} items): mean score "
            f"difference {row['mean_diff']:+.2f} grade steps, Holm-corrected Wilcoxon p = {row['p_holm']:.2g}")
    if not holds:
        why = ("the difference is not positive" if row["mean_diff"] <= 0 else
               "the difference is positive but not significant at the configured alpha")
        shares = decider.distribution.pivot_table(index="model", columns="grade", values="share", aggfunc="sum")
        good = {m: 100 * sum(float(shares.loc[m].get(g, 0.0)) for g in ("A", "B")) for m in (better, worse)}
        note += (f"; FAILS: {why}; answers graded A or B: {better} {good[better]:.0f} %, {worse} "
                 f"{good[worse]:.0f} %")
    return {"claim": f"{better} (Youku-mPLUG pre-training) answers instructions better than {worse} (Fig. 5)",
            "paper": "Fig. 5: mPLUG-Video's answers graded better than mPLUG-Video w/o pretrain's (65 instructions)",
            "ours": float(row["mean_diff"]), "low": float(row["ci_low"]), "high": float(row["ci_high"]),
            "holds": bool(holds), "note": note}


def _default_analysis() -> HumanEvalConfig:
    return HumanEvalConfig(package="data/human_eval/package", key="data/human_eval/key.json",
                           metric_columns=["BLEU-4", "CIDEr"],
                           claims=[("mplug_video", "mplug_video_no_pretrain"), ("mplug_video", "mplug_video_no_video")],
                           n_boot=1000)


@dataclass
class HumanEvalParams:
    """``human_eval``: the kit's instruction-tuned models answer grounded instructions; the rubric and the raters
    grade them (Fig. 5); a qualitative figure (Figs. 6–8).

    Attributes:
        package: items, responders and decoding of the rating package (``data/human_eval``).
        analysis: which ratings to analyse (none given: a SIMULATED panel, labelled so everywhere) and how.
        finding: the claim of the stage's finding, ``[better, worse]`` (one of ``analysis.claims``).
    """

    package: PackageConfig = field(default_factory=PackageConfig)
    analysis: HumanEvalConfig = field(default_factory=_default_analysis)
    finding: tuple[str, str] = ("mplug_video", "mplug_video_no_pretrain")

    def __post_init__(self):
        unknown = [m for claim in self.analysis.claims for m in claim if m not in self.package.responders]
        if unknown:
            raise ValueError(f"analysis.claims: {unknown[0]!r} is not a responder "
                             f"({', '.join(self.package.responders)})")
        if tuple(self.finding) not in {tuple(c) for c in self.analysis.claims}:
            raise ValueError(f"finding {list(self.finding)} is not one of analysis.claims")

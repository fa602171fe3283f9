"""The params dataclass of every pipeline stage, by stage name.

One explicit table (no registration by import side effects): ``vlstudy run <stage>`` checks the stage's
``params.yaml`` section against its dataclass before a kernel starts, and the stage notebook builds the same
dataclass from its parameters. The component configs inside each stage dataclass live with their components;
the dataclasses defined here only group several runs of one stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vlstudy.data.mini_youku.generate import MiniYoukuConfig
from vlstudy.data.prepare import PrepareConfig
from vlstudy.humaneval.analysis import HumanEvalConfig
from vlstudy.tasks.captioning import CaptioningConfig
from vlstudy.tasks.classification import ClassificationConfig
from vlstudy.tasks.human_eval import PackageConfig
from vlstudy.tasks.pretrain_alpro import PretrainALPROConfig
from vlstudy.tasks.pretrain_video import PretrainVideoConfig
from vlstudy.tasks.retrieval import RetrievalConfig
from vlstudy.tasks.text_lm import TextLMTaskConfig

__all__ = ["STAGE_PARAMS", "StatisticsParams", "FinetuneClassificationParams", "FinetuneRetrievalParams", "ModalityAblationParams",
           "ModalitySummaryParams", "HumanEvalParams", "ReportParams", "ABLATION_VARIANTS"]


@dataclass
class StatisticsParams:
    """``dataset_statistics``: Fig. 2, Fig. 3 and Table 3 from the prepared data.

    Attributes:
        seed: draws the title sample.
        title_sample: titles segmented into words for the title-length histogram (a uniform sample when the
            pool is larger; the real pool has 10M titles).
        duration_bin_s: width of the duration histogram's bins, in seconds.
        ground_truth: mini-Youku's ground truth (the pool's categories for Fig. 2); None for real data.
        mini_youku_meta: mini-Youku's meta.json (the designed per-modality ceilings); None for real data.
    """

    seed: int = 0
    title_sample: int = 100_000
    duration_bin_s: float = 5.0
    ground_truth: str | None = "data/mini_youku/ground_truth.csv"
    mini_youku_meta: str | None = "data/mini_youku/meta.json"


@dataclass
class FinetuneClassificationParams:
    """``finetune_classification`` (Table 4): mPLUG-video and the ALPRO-style baseline, both pre-trained on the
    pool, plus ALPRO without pre-training (the gain pre-training brings).

    Attributes:
        mplug_video: mPLUG-video's run (ranked class names and the MLP head).
        alpro: ALPRO's run, from its pre-trained weights.
        alpro_from_scratch: also run `alpro` with ``pretrained=False``.
    """

    mplug_video: ClassificationConfig = field(default_factory=ClassificationConfig)
    alpro: ClassificationConfig = field(default_factory=lambda: ClassificationConfig(
        model="alpro", init="checkpoints/pretrain_alpro/model"))
    alpro_from_scratch: bool = True


@dataclass
class FinetuneRetrievalParams:
    """``finetune_retrieval``: the three ways of scoring pairs (see `vlstudy.tasks.retrieval`)."""

    mplug_contrastive: RetrievalConfig = field(default_factory=RetrievalConfig)
    mplug_matching: RetrievalConfig = field(default_factory=lambda: RetrievalConfig(method="mplug_matching"))
    alpro: RetrievalConfig = field(default_factory=lambda: RetrievalConfig(
        method="alpro", init="checkpoints/pretrain_alpro/model"))


# Table 6's rows: what the model reads, and whether it starts from the pre-trained weights.
ABLATION_VARIANTS: dict[str, tuple[str, bool]] = {
    "vision": ("vision", False),
    "language": ("language", False),
    "vision_language": ("vision_language", False),
    "vision_language_pretrained": ("vision_language", True),
}


@dataclass
class ModalityAblationParams:
    """``modality_ablation`` (Table 6), a DVC matrix stage: one run per variant, all else equal.

    Attributes:
        variant: the variant this run trains (the DVC matrix sets it; one of `variants`).
        variants: every variant of the matrix (``dvc.yaml`` reads this list).
        classification: the run; `variant` sets its ``modality`` and ``pretrained``.
    """

    variant: str = "vision_language_pretrained"
    variants: list[str] = field(default_factory=lambda: list(ABLATION_VARIANTS))
    classification: ClassificationConfig = field(default_factory=ClassificationConfig)

    def __post_init__(self):
        unknown = [v for v in [self.variant, *self.variants] if v not in ABLATION_VARIANTS]
        if unknown:
            raise ValueError(f"unknown variant {unknown[0]!r}; known: {', '.join(ABLATION_VARIANTS)}")


@dataclass
class ModalitySummaryParams:
    """``modality_summary``: Table 6 and its figure from the matrix's results.

    Attributes:
        score_set: which classification scores make the headline table and check (``generative``: ranked class
            names, the paper's protocol; ``head``: the MLP head); the other set is shown and checked beside it.
        n_boot: bootstrap resamples of the paired differences.
        seed: the bootstrap.
    """

    score_set: str = "generative"
    n_boot: int = 2000
    seed: int = 0


@dataclass
class HumanEvalParams:
    """``human_eval``: the rating package answered by the kit's models, and the analysis of the ratings.

    Attributes:
        package: items, responders and decoding of the rating package (``data/human_eval``).
        analysis: which ratings to analyse (none given: a SIMULATED panel, labelled so everywhere) and how.
    """

    package: PackageConfig = field(default_factory=PackageConfig)
    analysis: HumanEvalConfig = field(default_factory=HumanEvalConfig)


@dataclass
class ReportParams:
    """``report``: the front page gathering every stage's metrics, tables and figures."""

    title: str = "vlstudy — Youku-mPLUG study report"


STAGE_PARAMS: dict[str, type] = {
    "mini_youku": MiniYoukuConfig,
    "data": PrepareConfig,
    "dataset_statistics": StatisticsParams,
    "pretrain_text_lm": TextLMTaskConfig,
    "pretrain_video": PretrainVideoConfig,
    "pretrain_alpro": PretrainALPROConfig,
    "finetune_classification": FinetuneClassificationParams,
    "finetune_captioning": CaptioningConfig,
    "finetune_retrieval": FinetuneRetrievalParams,
    "modality_ablation": ModalityAblationParams,
    "modality_summary": ModalitySummaryParams,
    "human_eval": HumanEvalParams,
    "report": ReportParams,
}

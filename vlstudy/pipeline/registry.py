"""The study's stages and the params dataclass of each, by name.

One explicit table of dotted names, imported lazily (no registration by import side effects): ``vlstudy run
<stage>`` checks the stage's ``params.yaml`` section against its dataclass before any cell runs, importing only
that stage's module. A stage notebook imports its dataclass directly, so this table is not in any stage's import
closure (adding a stage does not make DVC rerun the others); a test checks that the two name the same class.
"""

from __future__ import annotations

import importlib

from vlstudy.config import ParamError

__all__ = ["STAGES", "params_class", "params_module"]

STAGES: dict[str, str] = {
    "mini_youku": "vlstudy.data.mini_youku.generate:MiniYoukuConfig",
    "data": "vlstudy.data.prepare:PrepareConfig",
    "dataset_statistics": "vlstudy.data.stats:StatisticsParams",
    "pretrain_text_lm": "vlstudy.tasks.text_lm:TextLMTaskConfig",
    "pretrain_mplug_video": "vlstudy.tasks.pretrain_mplug_video:PretrainMPLUGVideoConfig",
    "pretrain_alpro": "vlstudy.tasks.pretrain_alpro:PretrainALPROConfig",
    "pretrain_mplug2": "vlstudy.tasks.pretrain_mplug2:PretrainMPLUG2Config",
    "finetune_classification": "vlstudy.tasks.classification:FinetuneClassificationParams",
    "finetune_captioning": "vlstudy.tasks.captioning:FinetuneCaptioningParams",
    "finetune_retrieval": "vlstudy.tasks.retrieval:FinetuneRetrievalParams",
    "modality_summary": "vlstudy.report.ablation:ModalitySummaryParams",
    "instruction_tuning": "vlstudy.tasks.instruction_tuning:InstructionTuningParams",
    "human_eval": "vlstudy.tasks.human_eval:HumanEvalParams",
    "videomind_retrieval": "vlstudy.tasks.videomind:VideoMindRetrievalParams",
    "panda_splitting": "vlstudy.tasks.panda_splitting:PandaSplittingParams",
    "panda_captions": "vlstudy.tasks.panda_captions:PandaCaptionsParams",
    "panda_student": "vlstudy.tasks.panda_student:PandaStudentParams",
    "findings": "vlstudy.report.findings:FindingsParams",
    "report": "vlstudy.report.index:ReportParams",
}


def params_module(stage: str, where: str = "params.yaml") -> str:
    """The dotted name of the module that holds `stage`'s params dataclass (what its notebook imports first)."""
    if stage not in STAGES:
        raise ParamError(f"{where}: no stage {stage!r} (stages: {', '.join(STAGES)})")
    return STAGES[stage].partition(":")[0]


def params_class(stage: str, where: str = "params.yaml") -> type:
    """The params dataclass of `stage` (imports its module)."""
    return getattr(importlib.import_module(params_module(stage, where)), STAGES[stage].partition(":")[2])

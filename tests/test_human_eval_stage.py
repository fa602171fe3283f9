"""The ``human_eval`` stage on the kit's own answers: the package answered by instruction-tuned models of a tiny
study, the language-only control, automatic metrics of answers, the qualitative figure, and the finding."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from _tiny_study import make_tiny_study

from vlstudy.config import ParamError, from_dict
from vlstudy.humaneval.agreement import answer_metrics
from vlstudy.humaneval.analysis import HumanEvalConfig, analyse
from vlstudy.humaneval.instructions import GroundedItem, sample_grounded_items
from vlstudy.humaneval.protocol import ProtocolConfig, read_key, read_manifest
from vlstudy.humaneval.qualitative import plot_qualitative, qualitative_items, qualitative_table
from vlstudy.humaneval.rubric import as_ratings, grade_responses
from vlstudy.humaneval.simulate import SimulationConfig, simulate_panel
from vlstudy.tasks.common import TaskPaths, launch
from vlstudy.tasks.human_eval import (
    HumanEvalParams,
    PackageConfig,
    ResponderConfig,
    build_package,
    pretraining_finding,
)
from vlstudy.tasks.instruction_tuning import InstructionTuningConfig, run
from vlstudy.train.trainer import TrainConfig


@pytest.fixture(scope="module")
def tuned(planned_videos, tmp_path_factory):
    """The tiny study with one instruction-tuned model (a few steps)."""
    root = tmp_path_factory.mktemp("tuned")
    study = make_tiny_study(planned_videos, root)
    config = InstructionTuningConfig(init=str(study.init), truth=str(study.truth), num_frames=2, examples=0,
                                     train=TrainConfig(lr=2e-3, warmup_steps=1, max_steps=4, batch_size=4))
    launch(run, config, TaskPaths(data=str(study.data), out=str(root / "it"), work=str(root / "work"),
                                  cache=str(root / "cache")))
    return study, root / "it" / "model"


@pytest.fixture(scope="module")
def answered(planned_videos):
    """Grounded items on val videos with three responders of known quality (see test_humaneval_analysis)."""
    captions = {it.video_id: it.captions[0] for it in planned_videos.items}
    val = [t for t, it in zip(planned_videos.truths, planned_videos.items) if it.split == "val"]
    items = sample_grounded_items(val, ProtocolConfig(n_videos=60, n_instructions=90), np.random.default_rng(0))
    responses = {"reference": [it.reference for it in items], "caption": [captions[it.video_id] for it in items],
                 "empty": [""] * len(items)}
    return items, responses, grade_responses(items, responses)


def test_package_is_answered_by_the_tuned_models_and_the_language_only_control(tuned, tmp_path):
    study, model = tuned
    config = PackageConfig(protocol=ProtocolConfig(n_videos=4, n_instructions=6), truth=str(study.truth),
                           responders={"tuned": ResponderConfig(str(model)),
                                       "tuned_no_video": ResponderConfig(str(model), use_video=False)},
                           frames_per_video=2, max_new_tokens=10)
    answers = build_package(config, study.data, tmp_path / "human_eval")
    assert [len(a) for a in answers.responses.values()] == [6, 6]
    with_video, without = answers.responses["tuned"], answers.responses["tuned_no_video"]
    by_instruction: dict[str, set[str]] = {}
    for item, answer in zip(answers.items, without):
        by_instruction.setdefault(item.instruction, set()).add(answer)
    assert all(len(a) == 1 for a in by_instruction.values())  # without the video, the instruction alone decides
    assert len(set(with_video)) > 1

    manifest, key = read_manifest(tmp_path / "human_eval" / "package"), read_key(tmp_path / "human_eval" / "key.json")
    assert key["models"] == ["tuned", "tuned_no_video"] and len(manifest["items"]) == 6
    page = (tmp_path / "human_eval" / "package" / "rating.html").read_text(encoding="utf-8")
    assert "tuned" not in json.dumps(manifest) and "tuned" not in page  # blinded
    saved = [GroundedItem.from_dict(d) for d in
             json.loads((tmp_path / "human_eval" / "items.json").read_text(encoding="utf-8"))]
    assert saved == answers.items  # the checklists, to regrade later
    table = pd.read_csv(tmp_path / "human_eval" / "answers.csv", keep_default_na=False)
    assert table["answer"].tolist() == with_video + without
    again = build_package(config, study.data, tmp_path / "again")
    assert again.responses == answers.responses  # greedy decoding: the same answers every run


def test_answer_metrics_reward_the_reference_and_score_an_empty_answer_zero(answered):
    items, responses, _ = answered
    table = answer_metrics(items, responses).set_index(["model", "item_id"])
    assert list(table.columns) == ["BLEU-4", "CIDEr"] and len(table) == 3 * len(items)
    means = table.groupby("model").mean()
    assert means.loc["reference", "BLEU-4"] == pytest.approx(100.0)
    assert means.loc["reference", "CIDEr"] > means.loc["caption", "CIDEr"] > 0.0
    assert (table.loc["empty"] == 0.0).all().all()


def test_qualitative_cases_are_fixed_by_the_sample_and_show_every_answer_graded(answered):
    items, responses, rubric = answered
    cases = qualitative_items(items, ["scene_text", "overall", "category"])
    assert [c.aspect for c in cases] == ["scene_text", "overall", "category"]
    assert all(c == next(it for it in items if it.aspect == c.aspect) for c in cases)  # first in package order
    table = qualitative_table(cases, rubric)
    assert len(table) == 3 * 3 and table["model"].tolist()[:3] == ["reference", "caption", "empty"]
    assert (table[table["model"] == "reference"]["grade"] == "A").all()
    assert (table[table["model"] == "empty"]["grade"] == "D").all()
    frames = {it.video_id: np.zeros((3, 8, 8, 3), np.uint8) for it in cases}
    fig = plot_qualitative(table, frames, "定性结果")
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any(t.startswith("指令：") for t in texts) and any(t.startswith("[D] empty：（空）") for t in texts)
    with pytest.raises(KeyError, match=r"item q999 is not in the rubric table"):
        qualitative_table([GroundedItem("q999", "v", "overall", "?")], rubric)


def test_finding_is_decided_on_the_rubric_unless_the_raters_are_real(answered):
    _, _, rubric = answered
    config = HumanEvalConfig(n_boot=200, claims=[("reference", "caption"), ("caption", "reference")])
    rubric_report = analyse(as_ratings(rubric), config, np.random.default_rng(0))
    assert rubric_report.panel == "rubric" and np.isnan(rubric_report.agreement["fleiss_kappa"])
    # a noisy simulated panel that would rank the other way does not decide
    flipped = simulate_panel(rubric.assign(model=rubric["model"].replace({"reference": "caption", "caption":
                                                                              "reference"})),
                             SimulationConfig(), np.random.default_rng(0))
    simulated = analyse(flipped, config, np.random.default_rng(0))
    finding = pretraining_finding(simulated, rubric_report, "reference", "caption")
    assert finding["holds"] and finding["ours"] > 0 and finding["low"] <= finding["ours"] <= finding["high"]
    assert "decided on the rubric's grades" in finding["note"]
    assert set(finding) == {"claim", "paper", "ours", "low", "high", "holds", "note"}
    real = analyse(flipped.assign(simulated=False), config, np.random.default_rng(0))
    assert real.panel == "human raters"
    decided = pretraining_finding(real, rubric_report, "reference", "caption")
    assert not decided["holds"] and "human raters" in decided["note"]
    shares = real.distribution.pivot_table(index="model", columns="grade", values="share", aggfunc="sum")
    good = {m: 100 * (shares.loc[m, "A"] + shares.loc[m, "B"]) for m in ("reference", "caption")}
    assert decided["note"].endswith("; FAILS: the difference is not positive; answers graded A or B: reference "
                                    f"{good['reference']:.0f} %, caption {good['caption']:.0f} %")
    with pytest.raises(KeyError, match=r"claim 'caption > empty' is not among analysis.claims"):
        pretraining_finding(real, rubric_report, "caption", "empty")


def test_stage_params_name_responders_and_a_finding_among_the_claims():
    params = HumanEvalParams()
    assert params.finding in params.analysis.claims
    assert [r.use_video for r in params.package.responders.values()] == [True, True, False]
    with pytest.raises(ParamError, match=r"analysis.claims: 'videollama' is not a responder"):
        from_dict(HumanEvalParams, {"analysis": {"claims": [["videollama", "mplug_video"]]}})
    with pytest.raises(ParamError, match=r"finding \['mplug_video', 'mplug_video_no_video'\] is not one of"):
        from_dict(HumanEvalParams, {"analysis": {"claims": [["mplug_video", "mplug_video_no_pretrain"]]},
                                    "finding": ["mplug_video", "mplug_video_no_video"]})
    with pytest.raises(ParamError, match=r"qualitative: unknown aspect 'knowledge'"):
        from_dict(PackageConfig, {"qualitative": ["knowledge"]})

"""The videomind_retrieval stage's library: split parsing and checks, features → tables on toy dual encoders (equal
to a naive loop), the DeME-style training step, designed ceilings, saved results, and the finding's decision."""

import copy
import re

import numpy as np
import pandas as pd
import pytest
import torch
from _tiny_models import mplug_config, save_tiny_lm, tokenizer
from test_metrics_videomind import _naive

from vlstudy.data.prepared import parse_split
from vlstudy.metrics.videomind import LAYERS, layer_similarities, videomind_metrics
from vlstudy.models.alpro import ALPROConfig, ALPROForPretraining, TextEncoderConfig
from vlstudy.models.losses import multi_positive_contrastive_loss
from vlstudy.models.mplug_video import MPLUGVideoForContrastive
from vlstudy.models.video_encoder import VideoEncoderConfig
from vlstudy.report.videomind import (
    TABLE2_KEYS,
    intent_hardest_finding,
    layer_steps,
    paired_comparison,
    videomind_table,
)
from vlstudy.tasks.common import VideoInputConfig, video_dataset
from vlstudy.tasks.inspect import look_inside_multi_positive
from vlstudy.tasks.videomind import (
    DeMEConfig,
    VideoMindRetrievalParams,
    deme_loss,
    designed_ceiling,
    layer_features,
    load_results,
)

TEXTS = {"factual": ["小猫在草地上玩球", "小狗在公园里奔跑", "一个人在厨房里做饭", "篮球比赛的精彩瞬间"],
         "abstract": ["小猫的视频", "小狗的视频", "做饭的视频", "篮球的视频"],
         "intent": ["小猫通过玩球旨在开心", "小狗通过奔跑旨在锻炼", "一个人通过做饭旨在分享", "篮球比赛旨在精彩"]}


# --- params and splits ------------------------------------------------------------------------------------------


def test_parse_split_pools_splits_and_names_a_bad_value():
    assert parse_split("captioning/val+test") == ("captioning", ("val", "test"))
    assert parse_split("retrieval/test") == ("retrieval", ("test",))
    for bad in ("captioning", "captioning/dev", "pool/test", "captioning/val+val"):
        with pytest.raises(ValueError, match=rf"eval_split: '{re.escape(bad)}' is not 'task/split\[\+split...\]'"):
            parse_split(bad, "eval_split")


def test_params_refuse_a_training_split_and_unknown_models():
    with pytest.raises(ValueError, match="retrieval/train is a training split of finetune_retrieval"):
        VideoMindRetrievalParams(eval_split="retrieval/val+train")
    with pytest.raises(ValueError, match="captioning/train is a training split of deme"):
        VideoMindRetrievalParams(eval_split="captioning/train", deme=DeMEConfig(train_split="captioning/train"))
    with pytest.raises(ValueError, match=r"models.mplug_matching: not a dual-encoder retrieval method of the kit "
                                         r"\(mplug_contrastive, alpro, mplug2\)"):
        VideoMindRetrievalParams(models={"mplug_matching": "checkpoints/x"})
    with pytest.raises(ValueError, match="models.deme: not a dual-encoder"):
        VideoMindRetrievalParams(models={"deme": "checkpoints/x"})
    assert VideoMindRetrievalParams().eval_split == "captioning/test"


# --- toy dual encoders: features → the stage's tables --------------------------------------------------------


@pytest.fixture(scope="module")
def tok():
    return tokenizer([*TEXTS["factual"], *TEXTS["abstract"], *TEXTS["intent"]])


@pytest.fixture(scope="module")
def mplug(tok, tmp_path_factory):
    torch.manual_seed(0)
    return MPLUGVideoForContrastive(mplug_config(save_tiny_lm("gpt2", tok, tmp_path_factory.mktemp("lm"))))


@pytest.fixture(scope="module")
def alpro(tok):
    torch.manual_seed(0)
    video = VideoEncoderConfig(image_size=32, patch_size=16, num_frames=2, hidden_size=32, num_layers=1, num_heads=2)
    return ALPROForPretraining(ALPROConfig(video=video, text=TextEncoderConfig(num_heads=2)), tok)


@pytest.fixture
def layered_records(video_records):
    """The three readable fixture videos, each with a factual, abstract and intent text."""
    records = video_records.head(3).copy()
    for layer in LAYERS:
        records[layer] = TEXTS[layer][:3]
    return records


@pytest.mark.parametrize("which", ["mplug", "alpro"])
def test_features_to_tables_equal_a_naive_loop_over_the_models_own_features(which, request, layered_records,
                                                                             tmp_path):
    model = request.getfixturevalue(which)
    dataset = video_dataset(layered_records, model.config.video, VideoInputConfig(cache=False), "eval", 0, tmp_path)
    texts = {layer: layered_records[layer].tolist() for layer in LAYERS}
    video_feat, text_feat = layer_features(model, dataset, texts, batch_size=2)
    assert model.training  # restored
    result = videomind_metrics(layer_similarities(video_feat, text_feat))

    # Independently: every clip and every text through the model one at a time, scores by hand, naive ranks.
    model.eval()
    with torch.no_grad():
        clips = [dataset[i]["video"][None] for i in range(3)]
        if which == "alpro":
            videos = [model.features(c)[0][0] for c in clips]
            encode = {layer: [model.features(None, *model.tokenize([t]))[1][0] for t in values]
                      for layer, values in texts.items()}
        else:
            videos = [model.contrastive_features(c)[0][0] for c in clips]
            encode = {layer: [model.contrastive_features(None, [t])[1][0] for t in values]
                      for layer, values in texts.items()}
    model.train()
    scores = {layer: [[float(t @ v) for v in videos] for t in encode[layer]] for layer in LAYERS}
    expected, profiles = _naive(scores)
    for key, value in expected.items():
        assert result.summary[key] == pytest.approx(value, abs=1e-9), key
    np.testing.assert_array_equal(result.per_item[["v2t_r1", "v2t_r2", "v2t_r3"]].to_numpy(), profiles)
    np.testing.assert_allclose(np.linalg.norm(video_feat, axis=1), 1.0, atol=1e-5)


def test_saved_matrices_load_back_as_the_same_results(tmp_path):
    from vlstudy import io

    rng = np.random.default_rng(0)
    layers = {layer: rng.normal(size=(7, 7)).astype(np.float32).astype(np.float64) for layer in LAYERS}
    io.write_table(tmp_path / "videos.csv", pd.DataFrame({"video_id": [f"v{i}" for i in range(7)]}))
    np.savez(tmp_path / "similarity_toy.npz", **{k: v.astype(np.float32) for k, v in layers.items()})
    np.savez(tmp_path / "similarity_deme.npz", **{k: -v.astype(np.float32) for k, v in layers.items()})
    results = load_results(tmp_path, ["toy", "deme"])
    assert list(results) == ["toy", "deme"] and list(load_results(tmp_path)) == ["deme", "toy"]
    assert results["toy"].summary == videomind_metrics(layers).summary
    assert results["toy"].per_item["item_id"].tolist()[:2] == ["v0", "v1"]


# --- the DeME-style training step --------------------------------------------------------------------------------


@pytest.mark.parametrize("positives", ["each", "any"])
def test_deme_step_lowers_the_multi_layer_loss_on_a_toy_batch(mplug, positives):
    model = copy.deepcopy(mplug)  # the module's model stays untrained for the other tests
    batch = {"video": torch.randn(4, 2, 3, 32, 32, generator=torch.Generator().manual_seed(1)), **TEXTS}
    step = deme_loss(positives)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    model.train()
    for _ in range(30):
        loss = step(model, batch)["loss"]
        losses.append(float(loss.detach()))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    # With "each" a video's three texts share one softmax, so video→text cannot go below log 3: the loss's floor
    # is log(3) / 2. The step must close at least half of the gap from its start to that floor.
    floor = np.log(3) / 2 if positives == "each" else 0.0
    assert min(losses) >= floor - 1e-6
    assert losses[-1] - floor < 0.5 * (losses[0] - floor), losses


def test_deme_step_is_the_multi_positive_loss_of_the_models_features(mplug):
    batch = {"video": torch.randn(4, 2, 3, 32, 32, generator=torch.Generator().manual_seed(2)), **TEXTS}
    mplug.eval()
    with torch.no_grad():
        got = deme_loss("each")(mplug, batch)["loss"]
        video, text = mplug.contrastive_features(batch["video"], [t for item in zip(*TEXTS.values()) for t in item])
        want = multi_positive_contrastive_loss(video, text.view(4, 3, -1), mplug.contrastive.temp)
        steps, similarity = look_inside_multi_positive(mplug, batch["video"], TEXTS)
    mplug.train()
    assert float(got) == pytest.approx(float(want))
    assert steps.loc[steps["step"] == "loss, positives='each'", "tensor"].item() == f"{float(want):.3f}"
    assert similarity.shape == (4, 12) and similarity.columns[:3].tolist() == ["0:factual", "0:abstract", "0:intent"]
    np.testing.assert_allclose(similarity.iloc[1, 5], float(video[1] @ text[5]), atol=1e-3)
    assert batch["video"] is not None and deme_loss()(mplug, {"video": None})["loss"].requires_grad


# --- designed ceilings --------------------------------------------------------------------------------------------


def test_designed_ceiling_is_the_expected_score_of_a_perfect_guessing_recogniser(planned_videos):
    from vlstudy.data.mini_youku.oracle import designed_layer_scores

    table = planned_videos.table
    val = table[table["split"] == "val"].head(90)
    ids = val["video_id"].tolist()
    ceiling = designed_ceiling(table, ids, np.random.default_rng(0), draws=200)
    consistent = {layer: (s > 0).sum(axis=1) for layer, s in designed_layer_scores(val.reset_index(drop=True)).items()}
    for layer, m in consistent.items():  # a text consistent with m videos: its video is first with chance 1/m
        assert ceiling[f"t2v_{layer}_R@1"] == pytest.approx(100 * np.mean(1 / m), abs=2.0)
        assert ceiling[f"t2v_{layer}_MeanR"] == pytest.approx(np.mean((m + 1) / 2), abs=0.1)
    assert ceiling["t2v_factual_R@1"] > ceiling["t2v_abstract_R@1"] > ceiling["t2v_intent_R@1"]
    with pytest.raises(ValueError, match="the ground truth lists 1 of the evaluation videos not, e.g. nope.mp4"):
        designed_ceiling(table, [*ids[:3], "nope.mp4"], np.random.default_rng(0), draws=1)


# --- the finding and the tables -------------------------------------------------------------------------------------


def _result(noise: tuple[float, float, float], seed: int = 0, videos: int = 60):
    rng = np.random.default_rng(seed)
    video = rng.normal(size=(videos, 8))
    return videomind_metrics({layer: (video + n * rng.normal(size=video.shape)) @ video.T
                              for layer, n in zip(LAYERS, noise)})


def test_intent_hardest_holds_only_when_both_paired_steps_exclude_zero():
    ordered = layer_steps(_result((0.2, 1.0, 3.0)), rng=np.random.default_rng(0), n_boot=500)
    assert ordered["holds"].tolist() == [True, True]
    finding = intent_hardest_finding("toy", ordered)
    assert finding["holds"] and finding["note"].startswith("HOLDS: R@1 factual > abstract > intent = ")
    assert finding["low"] == ordered["low"].min() and finding["paper"].startswith("every model of Table 2")
    assert "InternVideo 82.10 > 77.60 > 50.80" in finding["paper"]

    flat = layer_steps(_result((1.0, 1.0, 3.0)), rng=np.random.default_rng(0), n_boot=500)
    first = flat.iloc[0]
    assert not first["holds"] and first["low"] <= 0
    assert first["difference"] == pytest.approx(first["upper_value"] - first["lower_value"])
    finding = intent_hardest_finding("toy", flat)
    assert not finding["holds"] and finding["note"].startswith("FAILS")
    assert finding["ours"] == pytest.approx(first["difference"])  # the step whose interval reaches lowest


def test_paired_comparison_names_the_better_model_per_metric():
    results = {"deme": _result((0.2, 0.2, 0.2)), "single": _result((0.2, 2.0, 4.0))}
    table = paired_comparison(results, "deme", ["t2v_intent_R@1", "t2v_intent_MeanR"],
                              rng=np.random.default_rng(0), n_boot=500).set_index("metric")
    assert table.loc["intent→V R@1", "verdict"] == "deme better"
    assert table.loc["intent→V MeanR", "verdict"] == "deme better"  # a lower rank is better
    assert table.loc["intent→V R@1", "difference"] == pytest.approx(
        results["deme"].summary["t2v_intent_R@1"] - results["single"].summary["t2v_intent_R@1"])


def test_table_puts_the_papers_rows_beside_ours_as_different_data():
    ours = {"mplug_contrastive": {"t2v_factual_R@1": {"estimate": 12.25, "low": 5.0, "high": 20.0}},
            "designed ceiling": {"t2v_factual_R@1": {"estimate": 74.0}}}
    table = videomind_table(ours, TABLE2_KEYS, "VideoMind Table 2", "mini-Youku captioning/test").set_index("system")
    assert table.loc["mplug_contrastive", "factual→V R@1"] == "12.2 [5.0, 20.0]"
    assert table.loc["designed ceiling", "factual→V R@1"] == "74.0"
    assert table.loc["mplug_contrastive", "any→V MeanR"] == "—"
    assert table.loc["UMT-L (paper)", "intent→V MeanR"] == "233.04"
    assert "different data" in table.loc["VAST (paper)", "data"]
    assert len(table) == 2 + 5


def test_layer_recall_table_and_figure_show_every_layer_and_the_ceiling_apart():
    import matplotlib.pyplot as plt

    from vlstudy.plotting import use_cjk_font
    from vlstudy.report.videomind import layer_recall_table, plot_layer_recall

    use_cjk_font()
    entry = {"estimate": 40.0, "low": 30.0, "high": 50.0}
    keys = [*(f"t2v_{layer}_R@1" for layer in LAYERS), "any2v_R@1"]
    ours = {"model": {key: entry for key in keys}, "designed ceiling": {key: {"estimate": 70.0} for key in keys}}
    table = layer_recall_table(ours)
    assert table["query"].tolist() == [*LAYERS, "any"] * 2
    assert table["low"].isna().sum() == 4 and (table.loc[table["system"] == "model", "low"] == 30.0).all()
    fig = plot_layer_recall(table, reference="designed ceiling")
    ax = fig.axes[0]
    assert len(ax.patches) == 4  # one bar per layer for the one model; the ceiling is drawn as lines
    assert [t.get_text() for t in ax.get_xticklabels()][-1] == "全部 (any)"
    plt.close(fig)


def test_the_stages_path_at_its_default_size_equals_the_naive_loop(tmp_path):
    """90 videos, three ground truths each, pooled queries: features → float32 matrices on disk → results, as run()
    does, against the naive sort-based loop on the same stored scores (coarse features make ties)."""
    from vlstudy import io

    rng = np.random.default_rng(3)
    video = np.round(rng.normal(size=(90, 6)), 1)
    features = {layer: np.round(video + noise * rng.normal(size=video.shape), 1)
                for layer, noise in zip(LAYERS, (0.5, 1.5, 3.0))}
    io.write_table(tmp_path / "videos.csv", pd.DataFrame({"video_id": [f"v{i:02d}" for i in range(90)]}))
    np.savez(tmp_path / "similarity_toy.npz",
             **{k: s.astype(np.float32) for k, s in layer_similarities(video, features).items()})
    result = load_results(tmp_path)["toy"]
    with np.load(tmp_path / "similarity_toy.npz") as saved:
        stored = {layer: saved[layer].astype(np.float64).tolist() for layer in LAYERS}
    expected, profiles = _naive(stored)
    for key, value in expected.items():
        assert result.summary[key] == pytest.approx(value, abs=1e-9), key
    np.testing.assert_array_equal(result.per_item[["v2t_r1", "v2t_r2", "v2t_r3"]].to_numpy(), profiles)
    assert result.summary["t2v_factual_R@1"] > result.summary["t2v_intent_R@1"]

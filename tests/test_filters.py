"""§3.1 filters: title rules, fingerprint and near-duplicate search, video-text scorers, the filter report."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from vlstudy.data.filters import FILTERS, FilterConfig, apply_filters, filter_report, flag_rules
from vlstudy.data.title_rules import cjk_count, is_ad_title, is_meaningless_title, title_word_count, title_words
from vlstudy.data.fingerprint import (
    DedupConfig,
    candidate_pairs,
    central_window,
    duplicate_groups,
    find_near_duplicates,
    fingerprint,
    registration_residual,
)
from vlstudy.data.schema import Record, records_to_frame
from vlstudy.data.similarity import ChineseClipScorer, CooccurrenceScorer, SimilarityConfig

NORMAL_TITLES = ("今天带大家看一场精彩的篮球比赛", "周末和朋友一起去海边旅游拍照", "可爱的小猫咪在家里玩毛线球",
                 "一起来看看这道美食怎么做吧", "2023年NBA总决赛精彩回顾", "【考试】一位老师讲解考试题目，在教室里，太精彩了")


# -- a tiny world like mini-Youku: one striped scene, a small moving disc -------------------------------------------


def render(phase: float, period: float, centre: tuple[float, float], n_frames: int = 48, shift=(0, 0),
           gain: float = 1.0, noise_seed: int = 0) -> np.ndarray:
    """(T, 64, 64, 3) uint8: shared panning stripes; a disc whose path depends on (phase, period, centre)."""
    t = np.arange(n_frames, dtype=np.float32)[:, None, None]
    y, x = np.mgrid[0:64, 0:64].astype(np.float32)
    y, x = y[None] - shift[0], x[None] - shift[1]
    w = (np.sin(2 * np.pi * (x + y + 0.4 * t) / 9.0) + 1) / 2  # (T, 64, 64)
    light, dark = np.array([150, 110, 80], np.float32), np.array([90, 140, 170], np.float32)
    frames = light * w[..., None] + dark * (1 - w[..., None])
    cx = centre[0] + 14 * np.sin(2 * np.pi * t / period + phase)
    cy = centre[1] + 6 * np.cos(2 * np.pi * t / period + phase)
    frames[((x - cx) ** 2 + (y - cy) ** 2) <= 36] = (230, 200, 40)
    frames = frames * gain + np.random.default_rng(noise_seed).normal(0, 2, frames.shape)
    return np.clip(frames, 0, 255).astype(np.uint8)


ORIGINAL = dict(phase=0.3, period=11.0, centre=(30.0, 28.0))
NEGATIVES = (dict(phase=2.1, period=9.0, centre=(27.0, 31.0)), dict(phase=0.3, period=7.0, centre=(34.0, 30.0)),
             dict(phase=4.0, period=14.0, centre=(26.0, 36.0)))


def duplicate_of(params: dict, n_frames: int = 48) -> np.ndarray:
    """A copy as the generator makes one: shifted 2-3 px, 8 % brighter, trimmed 3 + 2 frames, new noise."""
    return render(**params, n_frames=n_frames, shift=(2, -3), gain=1.08, noise_seed=7)[3:-2]


def write_mp4(path: Path, frames: np.ndarray, fps: int = 4) -> str:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return str(path)


# -- titles ------------------------------------------------------------------------------------------------------


def test_title_word_count_counts_jieba_words_with_letters_or_digits():
    assert title_words("今天带大家做一道家常红烧肉，简单又好吃") == [
        "今天", "带", "大家", "做", "一道", "家常", "红烧肉", "简单", "又", "好吃"]
    assert title_word_count("好看 😀！") == 1  # whitespace, emoji and punctuation tokens do not count
    assert title_word_count("2023年NBA总决赛精彩回顾") == 6
    assert title_word_count("") == 0
    assert cjk_count("2023年NBA总决赛") == 4


@pytest.mark.parametrize("title", ["加微信12345678领取优惠券 今天做红烧肉", "vx:88886666 包邮", "淘宝搜索同款 点击链接购买",
                                   "私信我免费送", "扫码关注有礼 好物分享", "QQ群123456代购", "限时折扣 加V了解",
                                   "www.youku-deal7.com 领取福利", "联系13812345678看更多"])
def test_advertising_titles_are_flagged(title):
    assert is_ad_title(title)


@pytest.mark.parametrize("title", [*NORMAL_TITLES, "今天猫咪一下非常可爱", "2023-10-01国庆出游记录"])
def test_ordinary_titles_are_not_ads_nor_meaningless(title):
    assert not is_ad_title(title)  # 今天猫咪 holds 天猫 (Tmall) across a word boundary
    assert not is_meaningless_title(title)


@pytest.mark.parametrize("title", ["哈哈哈哈哈哈哈哈", "无标题", "视频123", "。。。。。。", "随便拍拍", "asdfghjkl",
                                   "111111", "啊啊啊啊啊啊", "测试测试测试", "!!!???", "😀😀😀", "VID_20230101_1200"])
def test_meaningless_titles_are_flagged(title):
    assert is_meaningless_title(title)


def test_rules_apply_the_paper_thresholds_inclusively():
    titles = pd.Series(["我们 今天 一起 看看 比赛",  # exactly 5 words, 10 CJK characters
                        "我们 今天 一起 看看",  # 4 words
                        " ".join(["篮球"] * 31),  # 31 words
                        "abc def ghi jkl mno 好"])  # 6 words but 1 CJK character
    config = FilterConfig()
    flags = flag_rules(titles, np.array([10.0, 120.0, 9.99, 120.01]), ["", "", "", ""], config)
    assert flags["title_words"].tolist() == [5, 4, 31, 6]
    assert flags["title_length"].tolist() == [False, True, True, True]
    assert flags["duration"].tolist() == [False, False, True, True]
    unreadable = flag_rules(pd.Series(["我们 今天 一起 看看 比赛"]), np.array([np.nan]), ["file not found"], config)
    assert unreadable[["unreadable", "duration"]].iloc[0].tolist() == [True, False]


# -- fingerprint and near-duplicate search -----------------------------------------------------------------------


def test_near_duplicates_match_and_same_scene_videos_do_not():
    config = DedupConfig()
    videos = [render(**ORIGINAL), duplicate_of(ORIGINAL), *(render(**p, noise_seed=k) for k, p in enumerate(NEGATIVES))]
    prints = [fingerprint(v[slice(*central_window(len(v), config.window))], config) for v in videos]
    copy = registration_residual(prints[0], prints[1], config)
    others = [registration_residual(prints[0], p, config) for p in prints[2:]]
    assert copy < config.max_residual < min(others)
    pairs = find_near_duplicates(prints, config)
    assert pairs[["a", "b"]].values.tolist() == [[0, 1]]
    assert duplicate_groups(len(prints), pairs).tolist() == [0, 0, 1, 2, 3]


def test_lsh_ignores_tokens_held_by_too_many_videos():
    config = DedupConfig()
    prints = [fingerprint(render(**ORIGINAL)[8:40], config), fingerprint(duplicate_of(ORIGINAL)[6:38], config)]
    assert candidate_pairs(prints, config).tolist() == [[0, 1]]
    assert candidate_pairs(prints, replace(config, max_bucket=1)).shape == (0, 2)


# -- video-text scorers ------------------------------------------------------------------------------------------


def test_cooccurrence_scorer_ranks_mismatched_titles_lowest():
    rng = np.random.default_rng(0)
    palette = np.array([[200, 40, 40], [40, 160, 60], [50, 70, 200]])
    words = (("篮球", "球场", "投篮"), ("美食", "厨房", "红烧肉"), ("小猫", "宠物", "猫粮"))
    generic = ("今天", "大家", "一起", "看看", "分享", "日常")
    n, k = 150, 12
    labels = np.arange(n) % 3
    scorer = CooccurrenceScorer(SimilarityConfig(visual_words=8), title_words, np.random.default_rng(0))
    features, titles = [], []
    for c in labels:
        frames = np.full((4, 32, 32, 3), 128.0)
        frames[:, 8:24, 8:24] = palette[c]
        noisy = np.clip(frames + rng.normal(0, 8, frames.shape), 0, 255).astype(np.uint8)
        features.append(scorer.video_features(noisy))
        titles.append(" ".join([*rng.choice(words[c], 2), *rng.choice(generic, 3)]))
    mismatched = rng.choice(n, k, replace=False)
    for i in mismatched:
        titles[i] = " ".join([*words[(labels[i] + 1) % 3][:2], "今天", "分享"])
    scores = scorer.score(features, titles)
    lowest = set(np.argsort(scores)[:k].tolist())
    assert len(lowest & set(mismatched.tolist())) >= k - 1


def test_chinese_clip_scorer_needs_a_local_checkpoint(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=rf"ChineseCLIP checkpoint {tmp_path / 'nowhere'}: no config.json"):
        ChineseClipScorer(tmp_path / "nowhere", SimilarityConfig())


def test_chinese_clip_scorer_runs_from_a_saved_checkpoint(tmp_path: Path):
    from transformers import (
        BertTokenizerFast,
        ChineseCLIPConfig,
        ChineseCLIPImageProcessor,
        ChineseCLIPModel,
        ChineseCLIPProcessor,
    )

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"篮球比赛小猫宠物"])}
    tokenizer = BertTokenizerFast(vocab=vocab)
    small = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    config = ChineseCLIPConfig(text_config=dict(vocab_size=len(vocab), max_position_embeddings=32, **small),
                               vision_config=dict(image_size=32, patch_size=16, **small), projection_dim=16)
    ChineseCLIPModel(config).save_pretrained(tmp_path)
    image_processor = ChineseCLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    ChineseCLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(tmp_path)

    scorer = ChineseClipScorer(tmp_path, SimilarityConfig())
    frames = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    video = scorer.video_features(frames)
    assert video.shape == (16,) and np.isclose(np.linalg.norm(video), 1.0, atol=1e-5)
    scores = scorer.score([video, video], ["篮球比赛", "小猫宠物"])
    assert scores.shape == (2,) and np.all(np.abs(scores) <= 1.0 + 1e-6) and scores[0] != scores[1]

    # A 3-pixel-high frame is read as height x width x RGB, as PIL images (unambiguous) are, never as CHW.
    import torch
    from PIL import Image

    tiny = np.ascontiguousarray(frames[:, :3, :5])
    model, processor = scorer._model()
    pixels = processor(images=[Image.fromarray(f) for f in tiny], return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        reference = torch.nn.functional.normalize(model.get_image_features(pixel_values=pixels).pooler_output, dim=-1)
    reference = torch.nn.functional.normalize(reference.mean(dim=0), dim=0).numpy()
    np.testing.assert_allclose(scorer.video_features(tiny), reference, atol=1e-6)


# -- the whole filter pass and its report ------------------------------------------------------------------------


def test_apply_filters_flags_each_defect_with_its_reason(tmp_path: Path):
    (tmp_path / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(3000))
    videos = {
        "original.mp4": (render(**ORIGINAL, n_frames=56), "今天带大家看一场精彩的篮球比赛", ""),
        "copy.mp4": (duplicate_of(ORIGINAL, n_frames=56), "周末和朋友一起去海边旅游拍照", "duplicate"),
        "other.mp4": (render(**NEGATIVES[0], n_frames=56), "可爱的小猫咪在家里玩毛线球", ""),
        "ad.mp4": (render(**NEGATIVES[1], n_frames=56), "加微信12345678领取优惠券 今天做红烧肉", "ad_title"),
        "haha.mp4": (render(**NEGATIVES[2], n_frames=56), "哈哈哈哈哈哈哈哈", "meaningless_title"),
        "terse.mp4": (render(**NEGATIVES[2], n_frames=44, noise_seed=3), "篮球", "short_title"),
        "brief.mp4": (render(**NEGATIVES[1], n_frames=32), "一起来看看这道美食怎么做吧", "too_short"),
        "endless.mp4": (render(**NEGATIVES[0], n_frames=488), "2023年NBA总决赛精彩回顾", "too_long"),
    }
    records = [Record(vid, write_mp4(tmp_path / vid, frames), title=title)
               for vid, (frames, title, _) in videos.items()]
    records += [Record("corrupt.mp4", str(tmp_path / "corrupt.mp4"), title="今天带大家做一道家常红烧肉"),
                Record("missing.mp4", str(tmp_path / "missing.mp4"), title="今天带大家做一道家常红烧肉")]
    truth = pd.DataFrame({"video_id": [r.video_id for r in records],
                          "defect": [d for *_, d in videos.values()] + ["corrupt", "corrupt"],
                          "duplicate_of": ["original.mp4" if r.video_id == "copy.mp4" else "" for r in records]})

    kept, decisions, report = apply_filters(records_to_frame(records), truth,
                                            FilterConfig(num_workers=1, similarity_quantile=0.0))

    assert decisions["first_reason"].tolist() == ["", "duplicate", "", "ad_title", "meaningless_title", "title_length",
                                                  "duration", "duration", "unreadable", "unreadable"]
    assert list(decisions.columns[1:len(FILTERS) + 2]) == [f.name for f in FILTERS] + ["first_reason"]
    assert decisions.loc[1, "duplicate_of"] == "original.mp4"
    assert decisions.loc[9, "error"] == "file not found"
    assert decisions["duration_s"].iloc[:8].tolist() == [14.0, 12.75, 14.0, 14.0, 14.0, 11.0, 8.0, 122.0]
    assert kept["video_id"].tolist() == ["original.mp4", "other.mp4"]
    assert kept["duration"].tolist() == [14.0, 14.0]
    rules = report.set_index("filter").loc[["unreadable", "duration", "meaningless_title", "ad_title", "title_length",
                                            "duplicate"]]
    assert (rules["precision"] == 1.0).all() and (rules["recall"] == 1.0).all()
    assert report.set_index("filter").loc["any", ["removed", "support", "true_positives"]].tolist() == [8, 8, 8]


def test_filter_report_counts_duplicate_groups_and_attributed_reasons():
    decisions = pd.DataFrame({
        "video_id": ["o1", "c1", "o2", "c2", "c3", "x", "a1", "a2", "n"],
        "first_reason": ["duplicate", "", "duplicate", "duplicate", "duplicate", "duplicate", "ad_title",
                         "meaningless_title", "ad_title"],
    })
    for f in FILTERS:
        decisions[f.name] = decisions["first_reason"] == f.name
    truth = pd.DataFrame({"video_id": decisions["video_id"],
                          "defect": ["", "duplicate", "", "duplicate", "duplicate", "", "ad_title", "ad_title", ""],
                          "duplicate_of": ["", "o1", "", "o2", "o2", "", "", "", ""]})
    report = filter_report(decisions, truth).set_index("filter")
    # Group {o1, c1}: the original removed, its copy kept: 1 correct removal. Group {o2, c2, c3}: all three removed,
    # 2 were needed. x is no duplicate. So 3 of 5 removals are right, and all 3 needed removals happened.
    assert report.loc["duplicate", ["removed", "support", "true_positives"]].tolist() == [5, 3, 3]
    assert report.loc["duplicate", "precision"] == pytest.approx(0.6)
    assert report.loc["duplicate", "recall"] == pytest.approx(1.0)
    assert report.loc["ad_title", ["removed", "support", "true_positives", "precision", "recall"]].tolist() == [
        2, 2, 1, 0.5, 0.5]
    assert np.isnan(report.loc["meaningless_title", "recall"])  # no video has that defect
    assert report.loc["any", ["removed", "support", "true_positives"]].tolist() == [8, 5, 4]


def test_filter_report_rejects_incomplete_ground_truth():
    decisions = pd.DataFrame({"video_id": ["a"], "first_reason": [""], **{f.name: [False] for f in FILTERS}})
    with pytest.raises(ValueError, match=r"ground truth: missing column\(s\) \['duplicate_of'\]"):
        filter_report(decisions, pd.DataFrame({"video_id": ["a"], "defect": [""]}))
    with pytest.raises(ValueError, match="ground truth: no row for video_id 'a'"):
        filter_report(decisions, pd.DataFrame({"video_id": ["b"], "defect": [""], "duplicate_of": [""]}))
    with pytest.raises(ValueError, match=r"unknown defect value\(s\) \['typo'\]"):
        filter_report(decisions, pd.DataFrame({"video_id": ["a"], "defect": ["typo"], "duplicate_of": [""]}))


def test_filter_config_caps_workers_at_two():
    with pytest.raises(ValueError, match="num_workers must be 1..2"):
        FilterConfig(num_workers=3)


# -- bad input: videos too small to fingerprint or score ------------------------------------------------------


def write_tiny(path: Path, frames: np.ndarray, fps: int = 4) -> str:
    """H.264 4:4:4, which (unlike 4:2:0) allows odd and 1-pixel frame sizes."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv444p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())
    return str(path)


def test_videos_below_8_pixels_are_named_and_counted_not_a_crash(tmp_path: Path, caplog):
    records = [Record("a.mp4", write_mp4(tmp_path / "a.mp4", render(**ORIGINAL, n_frames=56)),
                      title="今天带大家看一场精彩的篮球比赛"),
               Record("b.mp4", write_mp4(tmp_path / "b.mp4", render(**NEGATIVES[0], n_frames=56)),
                      title="可爱的小猫咪在家里玩毛线球"),
               Record("c.mp4", write_mp4(tmp_path / "c.mp4", render(**NEGATIVES[1], n_frames=56)),
                      title="周末和朋友一起去海边旅游拍照"),
               Record("thin.mp4", write_tiny(tmp_path / "thin.mp4", render(**NEGATIVES[1], n_frames=56)[:, :3, :5]),
                      title="一起来看看这道美食怎么做吧"),
               Record("dot.mp4", write_tiny(tmp_path / "dot.mp4", render(**NEGATIVES[2], n_frames=56)[:, :1, :1]),
                      title="今天带大家做一道家常红烧肉")]
    with caplog.at_level("WARNING", logger="vlstudy.data"):
        kept, decisions, report = apply_filters(records_to_frame(records), None,
                                                FilterConfig(num_workers=1, similarity_quantile=0.0))
    assert kept["video_id"].tolist() == ["a.mp4", "b.mp4", "c.mp4"]
    assert decisions["first_reason"].tolist() == ["", "", "", "unreadable", "unreadable"]
    assert decisions["error"].tolist()[3:] == [f"frames of {size} px are too small to fingerprint and score "
                                               "(at least 8x8 px)" for size in ("5x3", "1x1")]
    assert decisions["duration_s"].tolist()[3:] == [14.0, 14.0]
    assert report.set_index("filter").loc["unreadable", "removed"] == 2
    assert [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()] == [
        f"unreadable pool video {v} ({tmp_path / v}), removed: {decisions.set_index('video_id').loc[v, 'error']}"
        for v in ("thin.mp4", "dot.mp4")]


@pytest.mark.parametrize("height, width", [(1, 1), (3, 5), (7, 40)])
def test_fingerprints_of_tiny_frames_are_finite_and_grid_cells_refuse_them(height, width):
    frames = render(**ORIGINAL, n_frames=32)[:, 20:20 + height, 20:20 + width]
    with np.errstate(all="raise"):  # no division by zero, no NaN
        print_ = fingerprint(frames, DedupConfig())
    assert print_.hashes.shape == (32, 4) and print_.hashes.dtype == np.uint64
    assert print_.luma.shape == (16, 64, 64) and print_.luma.dtype == np.uint8
    with pytest.raises(ValueError, match=rf"frames of {width}x{height} px are smaller than the 8x8 grid"):
        CooccurrenceScorer(SimilarityConfig(grid=8), title_words, np.random.default_rng(0)).video_features(frames)

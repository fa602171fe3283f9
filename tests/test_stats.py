"""Dataset statistics: the tables behind Fig. 2, Fig. 3 and Table 3, and the figures drawn from them."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

from vlstudy.data.classes import CLASS_NAMES, SUPER_CATEGORIES
from vlstudy.data.schema import Record, records_to_frame
from vlstudy.data.stats import (
    SUPER_CATEGORY_NOTE,
    category_share_within_super,
    duration_histogram,
    pairs_per_split,
    plot_figure3,
    plot_filter_report,
    plot_videos_per_category,
    pretrain_title_statistics,
    title_char_histogram,
    title_length_histogram,
    videos_per_category,
)
from vlstudy.data.youku import YoukuFormatError
from vlstudy.plotting import use_cjk_font


@pytest.fixture
def labelled() -> pd.DataFrame:
    labels = [0] * 3 + [23] * 2 + [44] + [None]
    return records_to_frame([Record(f"v{i}", f"v{i}.mp4", title="一个标题", label=label, duration=10.0 + i)
                             for i, label in enumerate(labels)])


def test_videos_per_category_lists_all_45_classes_in_official_order(labelled):
    table = videos_per_category(labelled)
    assert table["class_name"].tolist() == list(CLASS_NAMES)
    assert table.loc[[0, 23, 44], "videos"].tolist() == [3, 2, 1]
    assert table["videos"].sum() == 6  # the unlabelled video is not counted
    assert table.loc[0, "share"] == pytest.approx(0.5)
    assert table.loc[23, "super_category"] == "音乐"


def test_category_share_within_super_sums_to_one_where_defined(labelled):
    table = category_share_within_super(labelled)
    assert len(table) == 45 and list(dict.fromkeys(table["super_category"])) == list(SUPER_CATEGORIES)
    music = table[table["super_category"] == "音乐"].set_index("class_name")["share"]
    assert music.to_dict() == {"翻唱": 0.6, "MV": 0.4, "乐器演奏": 0.0}
    assert table[table["super_category"] == "财经"]["share"].isna().all()  # no video: undefined, not 0


def test_duration_histogram_bins_and_leaves_out_nan():
    table = duration_histogram(np.array([0.0, 4.9, 5.0, 12.0, 120.0, np.nan]), bin_s=5.0, max_s=120.0)
    assert table["bin_start"].iloc[:3].tolist() == [0.0, 5.0, 10.0]
    assert table["videos"].iloc[:3].tolist() == [2, 1, 1]
    assert table["videos"].iloc[-1] == 1 and table["bin_end"].iloc[-1] == 120.0  # the last bin is closed
    assert table["videos"].sum() == 5


def test_title_length_histogram_exact_and_sampled():
    titles = pd.Series(["今天 我们 一起 看 比赛", "篮球", None, "今天 我们 一起 看 比赛 吧"] * 50)
    exact = title_length_histogram(titles)
    assert exact.set_index("words").loc[[1, 5, 6], "titles"].tolist() == [50, 50, 50]
    assert exact["counted"].iloc[0] == exact["population"].iloc[0] == 150
    sampled = title_length_histogram(titles, np.random.default_rng(0), sample_size=30)
    assert sampled["titles"].sum() == 30 and sampled["counted"].iloc[0] == 30 and sampled["population"].iloc[0] == 150
    again = title_length_histogram(titles, np.random.default_rng(0), sample_size=30)
    assert again.equals(sampled)
    with pytest.raises(ValueError, match="needs an rng"):
        title_length_histogram(titles, sample_size=30)


def test_title_char_histogram_counts_code_points():
    table = title_char_histogram(pd.Series(["篮球", "abc", "好", None]))
    assert table["titles"].tolist() == [0, 1, 1, 1]


def test_pairs_per_split_counts_ground_truth_texts():
    caption = records_to_frame([Record("a", "a", captions=["一", "二", "三"]), Record("b", "b", captions=["四"])])
    hidden = records_to_frame([Record("c", "c"), Record("d", "d")])
    cls = records_to_frame([Record("e", "e", title="t", label=3), Record("f", "f", title="t")])
    table = pairs_per_split({("captioning", "val"): caption, ("captioning", "test"): hidden,
                             ("classification", "train"): cls})
    assert table.values.tolist() == [["captioning", "val", 2, 4, True], ["captioning", "test", 2, 0, False],
                                     ["classification", "train", 2, 1, True]]


def test_pretrain_title_statistics_reads_a_csv_and_samples_words(tmp_path: Path):
    path = tmp_path / "pretrain.csv"
    rows = [f"v{i}.mp4,{'今天 我们 一起 看 比赛' if i % 2 else '篮球'}" for i in range(400)] + ["blank.mp4,"]
    path.write_text("video_id:FILE,title\n" + "\n".join(rows) + "\n", encoding="utf-8")
    stats = pretrain_title_statistics(path, np.random.default_rng(0), sample_size=100)
    assert stats["summary"].iloc[0].tolist() == [401, 1, 100]
    assert stats["title_chars"].set_index("chars").loc[[2, 13], "titles"].tolist() == [200, 200]
    words = stats["title_words"]
    assert words["titles"].sum() == 100 and words["population"].iloc[0] == 400
    assert set(words.loc[words["titles"] > 0, "words"]) == {1, 5}
    path.write_text("video_id:FILE,caption\nv.mp4,x\n", encoding="utf-8")
    with pytest.raises(YoukuFormatError, match="missing required column"):
        pretrain_title_statistics(path, np.random.default_rng(0))


def test_figures_have_45_bars_and_readable_chinese_labels(labelled, tmp_path: Path):
    family = use_cjk_font()
    fig = plot_videos_per_category(videos_per_category(labelled))
    ax = fig.axes[0]
    assert len(ax.patches) == 45
    assert [t.get_text() for t in ax.get_xticklabels()] == list(CLASS_NAMES)
    assert matplotlib.rcParams["font.sans-serif"][0] == family
    assert ax.get_legend().get_title().get_text() == SUPER_CATEGORY_NOTE

    titles = pd.Series(["今天 我们 一起 看 比赛"] * 20)
    fig3 = plot_figure3(duration_histogram(labelled["duration"]),
                        title_length_histogram(titles, np.random.default_rng(0), sample_size=10),
                        category_share_within_super(labelled))
    assert len(fig3.axes) == 3
    assert "uniform random sample: 10 of 20 titles" in fig3.axes[1].get_title()
    assert [t.get_text() for t in fig3.axes[2].get_yticklabels()] == list(SUPER_CATEGORIES)
    fig3.savefig(tmp_path / "fig3.png")  # renders without error


def test_filter_report_figure_draws_counts_and_precision_recall():
    report = pd.DataFrame({"filter": ["duration", "ad_title", "any"], "reason": ["", "", ""], "flagged": [3, 2, 5],
                           "removed": [3, 2, 5], "precision": [1.0, 0.5, 0.8], "recall": [1.0, np.nan, 0.9]})
    fig = plot_filter_report(report)
    removals, quality = fig.axes[:2]
    assert [p.get_width() for p in removals.patches] == [3, 2]
    widths = [p.get_width() for p in quality.patches]
    assert widths[:3] == [1.0, 0.5, 1.0] and np.isnan(widths[3])  # an undefined recall draws no bar
    assert len(plot_filter_report(report.drop(columns=["precision", "recall"])).axes) == 1

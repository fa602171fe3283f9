"""Chinese labels render with a real CJK font; the report page stands alone offline."""

import json
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # tests only; notebooks keep the inline backend
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import font_manager  # noqa: E402

from vlstudy.plotting import cjk_font_path, use_cjk_font  # noqa: E402
from vlstudy.report.index import build_index, flatten_metrics  # noqa: E402


def test_chinese_labels_use_the_cjk_font_without_missing_glyphs(tmp_path):
    family = use_cjk_font()
    found = font_manager.findfont(font_manager.FontProperties(family=["sans-serif"]))
    assert Path(found) == cjk_font_path()
    fig, ax = plt.subplots()
    ax.bar(["翻唱", "电视剧周边（预告/杂谈）", "美食测评"], [3, -1, 2])
    ax.set_title("各类目视频数量")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph ... missing from font(s)" for boxes
        fig.savefig(tmp_path / "zh.png")
    plt.close(fig)
    assert family == "Noto Sans CJK SC" and matplotlib.rcParams["axes.unicode_minus"] is False


def test_build_index_gathers_current_stages_in_pipeline_order(tmp_path):
    reports = tmp_path / "reports"
    for sid, metrics, run in (("first", {"counts": {"train": 10}}, {"captions": {"fig": "图一"}, "seconds": 2,
                                                                      "tables": {"table_results": "Table 9: 结果"}}),
                              ("second", {"acc": 0.5}, {"seconds": 3}),
                              ("removed@cell", {"acc": 0.1}, {"seconds": 1})):
        (reports / "metrics").mkdir(parents=True, exist_ok=True)
        (reports / "runs").mkdir(parents=True, exist_ok=True)
        (reports / "metrics" / f"{sid}.json").write_text(json.dumps(metrics))
        (reports / "runs" / f"{sid}.json").write_text(json.dumps(run, ensure_ascii=False))
    figs = reports / "figures" / "first"
    figs.mkdir(parents=True)
    fig, ax = plt.subplots()
    ax.plot([1, 2])
    fig.savefig(figs / "fig.png")
    plt.close(fig)
    pd.DataFrame({"model": ["ours"], "top1": [0.5]}).to_csv(figs / "table_results.csv", index=False)
    pd.DataFrame({"metric": ["ours.R@7"], "estimate": [12.5], "low": [10.0], "high": [15.0]}).to_csv(
        figs / "all_metrics.csv", index=False)  # the numbers a headline-only metrics file leaves out
    # "removed@cell" has files on disk but is no longer a stage of the pipeline: the page leaves it out.
    out = build_index(tmp_path, reports / "index.html", data_note="数据不同", profile="smoke",
                      stage_ids=["first", "second"])
    html = out.read_text(encoding="utf-8")
    assert html.index("id='first'") < html.index("id='second'") and "removed@cell" not in html
    assert "counts.train" in html and "data:image/png;base64," in html and "图一" in html
    assert "<h3>Table 9: 结果</h3>" in html and "数据不同" in html
    appendix = html[html.index("all 1 numbers of this stage's result"):]
    assert "ours.R@7" in appendix[:appendix.index("</details>")]  # collapsed, under the first stage only
    assert html.count("numbers of this stage's result") == 1
    assert "profile smoke" in html and "class=banner" in html
    assert "@font-face" in html  # the CJK font travels with the page
    assert "http://" not in html and "https://" not in html


def test_flatten_metrics_skips_private_keys():
    assert flatten_metrics({"a": {"b": 1, "_c": 2}, "_d": 3, "e": [1]}) == {"a.b": 1}

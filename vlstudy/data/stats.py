"""Dataset statistics of Youku-mPLUG: Fig. 2, Fig. 3, Table 3 and the filter report, as tables and figures.

Xu et al. 2023 (arXiv 2306.04362) describe the data with the number of videos per category (Fig. 2), the
distributions of video duration and title length and the category share within each super-category
(Fig. 3), and the pairs per split of each benchmark (Table 3). Here each is a pure function from record
tables (vlstudy.data.schema) to a pandas table, and each figure is drawn from such a table alone (a stage
saves the table as CSV next to the PNG, so ``dvc plots`` and reviewers read the same numbers).

The paper groups the 45 categories into 20 super-categories, but the grouping is published only as an image;
``SUPER_CATEGORIES`` (vlstudy.data.classes) is this kit's own grouping, and the figures say so.

The real pre-training CSV has 10,009,370 titles. `pretrain_title_statistics` streams it with pyarrow and counts
title characters for every row, but segments titles into jieba words (about 0.1 ms a title of 15-20 words:
17 min for all 10M) only for a uniform random sample without replacement (``sample_size`` titles, 100,000 by
default: the standard error of any bar's share is below 0.16 percentage points); the word-length figure says so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from matplotlib.figure import Figure

from vlstudy.data.classes import CLASS_NAMES, SUPER_CATEGORIES, super_category_of
from vlstudy.data.title_rules import title_word_count
from vlstudy.data.youku import REQUIRED_COLUMNS, check_ids, iter_csv_batches
from vlstudy.plotting import use_cjk_font

__all__ = ["videos_per_category", "duration_histogram", "title_length_histogram", "title_char_histogram",
           "category_share_within_super", "pairs_per_split", "tags_6w_table", "videomind_text_statistics",
           "pretrain_title_statistics",
           "plot_videos_per_category", "plot_figure3", "plot_filter_report", "SUPER_CATEGORY_NOTE",
           "StatisticsParams"]

SUPER_CATEGORY_NOTE = "super-categories: this kit's grouping (the paper's is published only as an image)"


def videos_per_category(records: pd.DataFrame) -> pd.DataFrame:
    """Videos per class (Fig. 2): all 45 classes in the official order, zeros included.

    Args:
        records: a record table; rows whose ``label`` is NA are not counted.

    Returns:
        Columns ``label`` (0..44), ``class_name``, ``super_category``, ``videos``, ``share`` (of labelled videos).
    """
    labels = records["label"].dropna().astype(np.int64).to_numpy()
    counts = np.bincount(labels, minlength=len(CLASS_NAMES))
    total = counts.sum()
    return pd.DataFrame({
        "label": np.arange(len(CLASS_NAMES)),
        "class_name": CLASS_NAMES,
        "super_category": [super_category_of(n) for n in CLASS_NAMES],
        "videos": counts,
        "share": counts / total if total else np.zeros(len(CLASS_NAMES)),
    })


def duration_histogram(durations: pd.Series | np.ndarray, bin_s: float = 5.0,
                       max_s: float | None = None) -> pd.DataFrame:
    """Histogram of video durations (Fig. 3, left).

    Args:
        durations: seconds, shape (N,); NaN values are left out.
        bin_s: bin width in seconds; bins start at 0.
        max_s: the last bin ends here (default: the longest duration, rounded up to a bin).

    Returns:
        Columns ``bin_start``, ``bin_end`` (seconds, [start, end) except the closed last bin) and ``videos``.
    """
    values = np.asarray(durations, dtype=np.float64)
    values = values[~np.isnan(values)]
    top = max_s if max_s is not None else (np.ceil(values.max() / bin_s) * bin_s if len(values) else bin_s)
    edges = np.arange(0.0, top + bin_s / 2, bin_s)
    if len(edges) < 2:
        edges = np.array([0.0, bin_s])
    counts, edges = np.histogram(values, bins=edges)
    return pd.DataFrame({"bin_start": edges[:-1], "bin_end": edges[1:], "videos": counts})


def title_length_histogram(titles: pd.Series, rng: np.random.Generator | None = None,
                           sample_size: int | None = None) -> pd.DataFrame:
    """Histogram of title lengths in jieba words (Fig. 3, middle), exact or on a uniform random sample.

    Args:
        titles: the titles (missing ones are left out).
        rng: draws the sample; required when `sample_size` is smaller than the number of titles.
        sample_size: count words of at most this many titles, drawn uniformly without replacement.

    Returns:
        Columns ``words`` (0..max, every value), ``titles`` (count among the counted titles), ``share``,
        ``counted`` and ``population`` (how many titles were counted, out of how many).
    """
    values = titles.dropna()
    population = len(values)
    if sample_size is not None and sample_size < population:
        if rng is None:
            raise ValueError("title_length_histogram: sampling needs an rng (numpy Generator)")
        values = values.iloc[np.sort(rng.choice(population, sample_size, replace=False))]
    return _word_histogram(values, population)


def _word_histogram(titles, population: int) -> pd.DataFrame:
    words = np.array([title_word_count(t) for t in titles], dtype=np.int64)
    counts = np.bincount(words) if len(words) else np.zeros(1, np.int64)
    return pd.DataFrame({"words": np.arange(len(counts)), "titles": counts,
                         "share": counts / max(len(words), 1), "counted": len(words), "population": population})


def title_char_histogram(titles: pd.Series) -> pd.DataFrame:
    """Histogram of title lengths in characters (Unicode code points), over every title, vectorised.

    Returns:
        Columns ``chars`` (0..max, every value), ``titles`` and ``share``.
    """
    lengths = titles.dropna().str.len().to_numpy(dtype=np.int64)
    counts = np.bincount(lengths) if len(lengths) else np.zeros(1, np.int64)
    return pd.DataFrame({"chars": np.arange(len(counts)), "titles": counts, "share": counts / max(len(lengths), 1)})


def category_share_within_super(records: pd.DataFrame) -> pd.DataFrame:
    """Share of each category within its super-category (Fig. 3, right; this kit's grouping).

    Returns:
        One row per class, grouped by super-category in ``SUPER_CATEGORIES`` order: ``super_category``,
        ``class_name``, ``videos``, ``share`` (within the super-category; NaN for an empty one).
    """
    per_class = videos_per_category(records).set_index("class_name")["videos"]
    rows = []
    for sup, names in SUPER_CATEGORIES.items():
        total = int(per_class[list(names)].sum())
        for name in names:
            rows.append({"super_category": sup, "class_name": name, "videos": int(per_class[name]),
                         "share": per_class[name] / total if total else np.nan})
    return pd.DataFrame(rows)


def pairs_per_split(splits: Mapping[tuple[str, str], pd.DataFrame]) -> pd.DataFrame:
    """Table 3: videos and video-text pairs per task and split.

    A pair is a video with one ground-truth text: pretrain a title, classification a label, captioning and
    retrieval a caption (a val/test video with k reference captions counts k pairs). A split without ground
    truth has 0 pairs.

    Args:
        splits: (task, split) -> record table.

    Returns:
        Columns ``task``, ``split``, ``videos``, ``pairs``, ``has_ground_truth``.
    """
    rows = []
    for (task, split), df in splits.items():
        if task == "pretrain":
            pairs = int(df["title"].notna().sum())
        elif task == "classification":
            pairs = int(df["label"].notna().sum())
        elif task in ("captioning", "retrieval"):
            pairs = int(df["captions"].map(len).sum())
        else:
            raise ValueError(f"pairs_per_split: unknown task {task!r}")
        rows.append({"task": task, "split": split, "videos": len(df), "pairs": pairs, "has_ground_truth": pairs > 0})
    return pd.DataFrame(rows, columns=["task", "split", "videos", "pairs", "has_ground_truth"])


TAGS_6W = ("who", "what", "when", "where", "why", "how")
VIDEOMIND_LAYERS = ("factual", "abstract", "intent")


def tags_6w_table(records: pd.DataFrame) -> pd.DataFrame:
    """The 6W tags of a record table, one column per tag (VideoMind §3.2; the ``tags_6w`` JSON column parsed).

    Returns:
        Columns ``video_id`` and ``who``, ``what``, ``when``, ``where``, ``why``, ``how``; one row per record with
        tags (records whose ``tags_6w`` is empty, e.g. real Youku-mPLUG data, are left out).

    Raises:
        ValueError: a cell that is not a JSON object, naming its video id.
    """
    rows = []
    for video_id, cell in zip(records["video_id"], records["tags_6w"]):
        if cell is None:
            continue
        try:
            tags = json.loads(cell)
        except json.JSONDecodeError:
            tags = None
        if not isinstance(tags, dict):
            raise ValueError(f"tags_6w of video {video_id!r} is not a JSON object: {cell[:80]!r}")  # noqa: TRY004 -- bad data
        rows.append({"video_id": video_id, **{key: tags.get(key) for key in TAGS_6W}})
    return pd.DataFrame(rows, columns=["video_id", *TAGS_6W])


def videomind_text_statistics(records: pd.DataFrame) -> pd.DataFrame:
    """How much each VideoMind layer and 6W tag says: coverage, length and variety.

    Returns:
        One row per layer (factual, abstract, intent) and per 6W tag: ``field``, ``kind`` (``layer`` / ``tag``),
        ``videos`` (records that have it), ``mean_chars`` (mean length in characters), ``distinct`` (distinct
        values), ``top_value`` and ``top_share`` (the commonest value and its share of ``videos``).
    """
    columns = {layer: records[layer].dropna() for layer in VIDEOMIND_LAYERS}
    tags = tags_6w_table(records)
    columns.update({key: tags[key].dropna() for key in TAGS_6W})
    rows = []
    for name, values in columns.items():
        counts = values.value_counts()
        rows.append({"field": name, "kind": "layer" if name in VIDEOMIND_LAYERS else "tag", "videos": len(values),
                     "mean_chars": float(values.str.len().mean()) if len(values) else np.nan,
                     "distinct": len(counts), "top_value": counts.index[0] if len(counts) else None,
                     "top_share": counts.iloc[0] / len(values) if len(values) else np.nan})
    return pd.DataFrame(rows)


def pretrain_title_statistics(csv_path, rng: np.random.Generator,
                              sample_size: int = 100_000) -> dict[str, pd.DataFrame]:
    """Title statistics of a pre-training CSV of any size, in one streaming pass (the real one has 10M rows).

    The CSV is read in Arrow batches (vlstudy.data.youku.iter_csv_batches: the same format checks as every
    reader), so memory holds the ids (for the duplicate check), one batch and the sample, never all titles.
    Characters are counted for every non-empty title. Words are counted on a uniform random sample without
    replacement: every row gets a uniform random key (one draw per row, in file order, so the sample does
    not depend on the batch size) and the `sample_size` non-empty titles with the smallest keys are kept.

    Args:
        csv_path: the pretrain CSV.
        rng: draws the sample keys.
        sample_size: titles segmented with jieba.

    Returns:
        ``{"summary": one row (rows, empty_titles, word_sample), "title_chars": as title_char_histogram,
        "title_words": as title_length_histogram}``.

    Raises:
        YoukuFormatError: a missing column, a non-UTF-8 line, an empty or repeated id.
    """
    path = Path(csv_path)
    id_column = REQUIRED_COLUMNS["pretrain"][0]
    ids, chars = [], np.zeros(1, np.int64)
    kept_keys, kept_titles = np.zeros(0), pa.array([], pa.string())
    rows = empty = 0
    for _, batch in iter_csv_batches(path, REQUIRED_COLUMNS["pretrain"]):
        ids.append(batch.column(id_column))
        titles = pc.utf8_trim_whitespace(batch.column("title"))
        keys = rng.random(batch.num_rows)
        present = pc.fill_null(pc.not_equal(titles, ""), False)
        titles, keys = pc.filter(titles, present), keys[present.to_numpy(zero_copy_only=False)]
        rows, empty = rows + batch.num_rows, empty + batch.num_rows - len(titles)
        lengths = np.bincount(pc.utf8_length(titles).to_numpy(zero_copy_only=False))
        chars = np.pad(chars, (0, max(0, len(lengths) - len(chars))))
        chars[:len(lengths)] += lengths
        kept_keys = np.concatenate([kept_keys, keys])
        kept_titles = pa.concat_arrays([kept_titles, titles])
        if len(kept_keys) > sample_size:
            smallest = np.argpartition(kept_keys, sample_size)[:sample_size]
            kept_keys, kept_titles = kept_keys[smallest], kept_titles.take(pa.array(smallest))
    check_ids(pa.chunked_array(ids, pa.string()), path, id_column)
    present_titles = rows - empty
    char_table = pd.DataFrame({"chars": np.arange(len(chars)), "titles": chars,
                               "share": chars / max(present_titles, 1)})
    words = _word_histogram(kept_titles.to_pylist(), present_titles)
    summary = pd.DataFrame([{"rows": rows, "empty_titles": empty, "word_sample": len(kept_titles)}])
    return {"summary": summary, "title_chars": char_table, "title_words": words}


# -- figures -----------------------------------------------------------------------------------------------------


def _super_colours() -> dict[str, tuple]:
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    return {sup: cmap(i % 20) for i, sup in enumerate(SUPER_CATEGORIES)}


def plot_videos_per_category(table: pd.DataFrame, title: str = "Videos per category (cf. paper Fig. 2)") -> Figure:
    """Fig. 2: one bar per class (45), Chinese class names, bars coloured by super-category.

    Args:
        table: the output of `videos_per_category`.
    """
    from matplotlib.patches import Patch

    use_cjk_font()
    colours = _super_colours()
    fig = Figure(figsize=(15, 5.5))
    ax = fig.subplots()
    ax.bar(np.arange(len(table)), table["videos"], color=[colours[s] for s in table["super_category"]])
    ax.set_xticks(np.arange(len(table)), table["class_name"], rotation=90, fontsize=9)
    ax.set_xlim(-0.7, len(table) - 0.3)
    ax.set_ylabel("videos")
    ax.set_title(title)
    ax.set_ylim(0, max(1, table["videos"].max()) * 1.4)  # headroom for the legend
    handles = [Patch(color=c, label=s) for s, c in colours.items()]
    ax.legend(handles=handles, ncol=10, fontsize=8, title=SUPER_CATEGORY_NOTE, title_fontsize=8, loc="upper center")
    fig.tight_layout()
    return fig


def _short_name(name: str) -> str:
    """A class name without its parenthesised part, for labels in narrow bars."""
    return name.split("（")[0]


def plot_figure3(durations: pd.DataFrame, title_words: pd.DataFrame, shares: pd.DataFrame) -> Figure:
    """Fig. 3: duration histogram, title length in words, category share within each super-category.

    Args:
        durations: the output of `duration_histogram`.
        title_words: the output of `title_length_histogram` (a sampled count is noted on the panel).
        shares: the output of `category_share_within_super`.
    """
    use_cjk_font()
    fig = Figure(figsize=(18, 6))
    ax_d, ax_w, ax_s = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 1.4]})

    ax_d.bar(durations["bin_start"], durations["videos"], width=durations["bin_end"] - durations["bin_start"],
             align="edge", edgecolor="white")
    ax_d.set_xlabel("duration (s)")
    ax_d.set_ylabel("videos")
    ax_d.set_title("Video duration")

    ax_w.bar(title_words["words"], title_words["share"] * 100, edgecolor="white")
    ax_w.set_xlabel("title length (jieba words)")
    ax_w.set_ylabel("% of titles")
    counted, population = int(title_words["counted"].iloc[0]), int(title_words["population"].iloc[0])
    note = (f"uniform random sample: {counted:,} of {population:,} titles" if counted < population
            else f"all {population:,} titles")
    ax_w.set_title(f"Title length\n({note})", fontsize=10)

    colours = _super_colours()
    supers = list(dict.fromkeys(shares["super_category"]))
    for y, sup in enumerate(supers):
        left = 0.0
        rows = shares[shares["super_category"] == sup]
        for k, row in enumerate(rows.itertuples()):
            share = 0.0 if np.isnan(row.share) else row.share
            shade = np.array(colours[sup]) * (1.0 - 0.18 * k)
            ax_s.barh(y, share, left=left, color=np.clip(shade, 0, 1), edgecolor="white")
            if share >= 0.12:
                ax_s.text(left + share / 2, y, _short_name(row.class_name), ha="center", va="center", fontsize=7)
            left += share
    ax_s.set_yticks(np.arange(len(supers)), supers)
    ax_s.invert_yaxis()
    ax_s.set_xlim(0, 1)
    ax_s.set_xlabel("share of videos within the super-category")
    ax_s.set_title(f"Category share within super-category\n({SUPER_CATEGORY_NOTE})", fontsize=10)
    fig.tight_layout()
    return fig


def plot_filter_report(report: pd.DataFrame, target: float = 0.9) -> Figure:
    """Videos removed per filter and, when the report has them, each filter's precision and recall.

    Args:
        report: the output of `vlstudy.data.filters.filter_report`.
        target: a reference line on the precision/recall panel.
    """
    use_cjk_font()
    rows = report[report["filter"] != "any"]
    has_truth = "precision" in report.columns
    fig = Figure(figsize=(13 if has_truth else 6.5, 4.5))
    axes = fig.subplots(1, 2 if has_truth else 1)
    ax_n = axes[0] if has_truth else axes
    y = np.arange(len(rows))
    ax_n.barh(y, rows["removed"])
    ax_n.set_yticks(y, rows["filter"])
    ax_n.invert_yaxis()
    ax_n.set_xlabel("videos removed (first reason)")
    ax_n.set_title("Filter removals")
    if has_truth:
        ax_p = axes[1]
        ax_p.barh(y - 0.2, rows["precision"], height=0.4, label="precision")  # NaN (undefined): no bar
        ax_p.barh(y + 0.2, rows["recall"], height=0.4, label="recall")
        ax_p.axvline(target, color="k", linestyle="--", linewidth=1, label=f"target {target}")
        ax_p.set_yticks(y, rows["filter"])
        ax_p.invert_yaxis()
        ax_p.set_xlim(0, 1.05)
        ax_p.set_title("Against the generator's ground truth")
        ax_p.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig


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
        videomind_split: the split whose VideoMind layers and 6W tags are described beside the pool's ("task/split",
            "+" pools splits): the evaluation split of ``videomind_retrieval``.
    """

    seed: int = 0
    title_sample: int = 100_000
    duration_bin_s: float = 5.0
    ground_truth: str | None = "data/mini_youku/ground_truth.csv"
    mini_youku_meta: str | None = "data/mini_youku/meta.json"
    videomind_split: str = "captioning/test"

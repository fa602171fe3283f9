"""benchmarks/table6_train_size.py: the training videos it adds are the generator's kind (balanced labels, ids and
titles new to the dataset, the same draws on every call), and its prepared folder is the study's with only the
classification train split extended."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vlstudy.data.classes import NUM_CLASSES
from vlstudy.data.mini_youku.config import MiniYoukuConfig, SplitCounts
from vlstudy.data.video import video_info

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "table6_train_size.py"
sys.path.insert(0, str(SCRIPT.parent))
_spec = importlib.util.spec_from_file_location("table6_train_size", SCRIPT)
bench = sys.modules["table6_train_size"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


@pytest.fixture(scope="module")
def cfg():
    return MiniYoukuConfig(pool_videos=20, classification_per_class=SplitCounts(1, 1, 1),
                           captioning=SplitCounts(2, 1, 1), retrieval=SplitCounts(2, 1, 1), corpus_videos=2,
                           workers=1)


def test_extra_items_are_new_balanced_and_reproducible(cfg):
    items = bench.extra_items(cfg, 3)
    assert len(items) == 2 * NUM_CLASSES
    assert set(Counter(it.cues.label for it in items).values()) == {2}
    assert all((it.task, it.split) == ("classification", "train") for it in items)
    study = bench.plan(cfg)
    assert not {it.video_id for it in items} & {it.video_id for it in study}
    titles = [it.title for it in items]
    assert len(set(titles)) == len(titles) and not set(titles) & {it.title for it in study}
    assert all(set(bench.LAYER_COLUMNS) <= set(it.extras) for it in items)
    again = bench.extra_items(cfg, 3)
    assert [(it.video_id, it.title, it.cues) for it in again] == [(it.video_id, it.title, it.cues) for it in items]
    # one seed stream indexed across classes: the first added video is the same at any size
    assert bench.extra_items(cfg, 4)[0].video_id == items[0].video_id


def test_extra_items_refuses_a_split_no_larger_than_the_study(cfg):
    with pytest.raises(SystemExit, match="must exceed the study's 1"):
        bench.extra_items(cfg, 1)


def test_prepared_with_extends_only_the_train_split(cfg, tmp_path, monkeypatch):
    items = bench.extra_items(cfg, 2)[:3]
    study = tmp_path / "data" / "prepared"
    study.mkdir(parents=True)
    train = pd.DataFrame({"video_id": ["a.mp4", "b.mp4"], "video_path": ["data/v/a.mp4", "data/v/b.mp4"],
                          "source_id": ["a.mp4", "b.mp4"], "title": ["t1", "t2"],
                          "label": pd.array([4, 7], dtype="Int64"),
                          "captions": [np.array([], dtype=object)] * 2, "duration": [np.nan] * 2,
                          **{c: ["x", "y"] for c in bench.LAYER_COLUMNS}})
    train.to_parquet(study / "classification_train.parquet")
    (study / "manifest.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    folder = Path(bench.prepared_with(items, tmp_path / "videos", tmp_path / "out" / "prepared"))
    assert (folder / "manifest.json").is_symlink()
    got = pd.read_parquet(folder / "classification_train.parquet")
    assert got["label"].dtype == train["label"].dtype
    assert got["video_id"].tolist() == ["a.mp4", "b.mp4", *[it.video_id for it in items]]
    assert got["label"].tolist()[2:] == [it.cues.label for it in items]
    assert got["video_path"].tolist()[2:] == [str(tmp_path / "videos" / it.video_id) for it in items]
    assert got["abstract"].tolist()[2:] == [it.extras["abstract"] for it in items]


def test_render_writes_decodable_videos_once(cfg, tmp_path):
    item = bench.extra_items(cfg, 2)[0]
    bench.render([item], tmp_path, workers=1)
    path = tmp_path / item.video_id
    assert video_info(path).num_frames == sum(s.n_frames for s in item.spec.shots)
    stamp = path.stat().st_mtime_ns
    bench.render([item], tmp_path, workers=1)  # a rerun reuses what is there
    assert path.stat().st_mtime_ns == stamp

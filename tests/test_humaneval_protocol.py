"""Human-evaluation protocol: sampling rule, responses, blinding, the rating package, and ratings import."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from vlstudy.humaneval.page import RATINGS_COLUMNS, render_page
from vlstudy.humaneval.protocol import (
    ASPECTS,
    INSTRUCTIONS,
    EvalItem,
    Instruction,
    ProtocolConfig,
    VideoItem,
    assign_slots,
    generate_responses,
    read_key,
    read_manifest,
    sample_items,
    write_package,
)
from vlstudy.humaneval.ratings import RatingsError, read_ratings

MODELS = ("secret-model-one", "secret-model-two", "secret-model-three")


def _videos(n: int, frames: int = 2, size: int = 8) -> list[VideoItem]:
    rng = np.random.default_rng(0)
    return [VideoItem(f"vid{k:03d}", rng.integers(0, 256, (frames, size, size + 2, 3), dtype=np.uint8))
            for k in range(n)]


def _echo(tag: str):
    """A trivial responder: repeats its tag, the video and the instruction."""
    return lambda videos, instructions: [f"{tag}|{v.video_id}|{ins}" for v, ins in zip(videos, instructions)]


@pytest.fixture
def package(tmp_path):
    """A 4-item package over 3 videos with echo responses; returns (package_dir, key_path, items, responses)."""
    videos = _videos(5)
    items = sample_items([v.video_id for v in videos], ProtocolConfig(n_videos=3, n_instructions=4),
                         np.random.default_rng(1))
    responders = {m: _echo(f"answer-{k}") for k, m in enumerate(MODELS)}  # responses must not reveal the model
    responses = generate_responses(items, {v.video_id: v for v in videos}, responders)
    package_dir, key_path = tmp_path / "package", tmp_path / "secret" / "key.json"
    write_package(package_dir, key_path, items, videos, responses, np.random.default_rng(2))
    return package_dir, key_path, items, responses


def test_instruction_bank_covers_every_aspect_with_distinct_chinese_templates():
    per_aspect = Counter(ins.aspect for ins in INSTRUCTIONS)
    assert set(per_aspect) == set(ASPECTS)
    assert min(per_aspect.values()) >= 3
    texts = [ins.text for ins in INSTRUCTIONS]
    assert len(set(texts)) == len(texts)
    assert all(re.search(r"[\u4e00-\u9fff]{4}", t) for t in texts)


def test_sampling_rule_65_instructions_over_50_videos():
    pool = [f"v{k:04d}" for k in range(120)]
    items = sample_items(pool, ProtocolConfig(), np.random.default_rng(0))
    assert [it.item_id for it in items] == [f"q{k:03d}" for k in range(1, 66)]
    per_video = Counter(it.video_id for it in items)
    assert len(per_video) == 50 and sorted(Counter(per_video.values()).items()) == [(1, 35), (2, 15)]
    assert [v for v in dict.fromkeys(it.video_id for it in items)] == sorted(per_video)  # pool order
    aspect_counts = Counter(it.aspect for it in items)
    assert set(aspect_counts) == set(ASPECTS) and max(aspect_counts.values()) - min(aspect_counts.values()) <= 1
    for video in per_video:
        texts = [it.instruction for it in items if it.video_id == video]
        assert len(set(texts)) == len(texts)
    bank = {(ins.aspect, ins.text) for ins in INSTRUCTIONS}
    assert all((it.aspect, it.instruction) in bank for it in items)
    assert sample_items(pool, ProtocolConfig(), np.random.default_rng(0)) == items
    assert sample_items(pool, ProtocolConfig(), np.random.default_rng(1)) != items


def test_sampling_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"^video pool has 3 videos, fewer than n_videos=50$"):
        sample_items(["a", "b", "c"], ProtocolConfig(), np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"^video pool: duplicated video_id 'b'$"):
        sample_items(["a", "b", "b"], ProtocolConfig(n_videos=2, n_instructions=2), np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"n_instructions \(3\) must be >= n_videos \(4\)"):
        ProtocolConfig(n_videos=4, n_instructions=3)
    with pytest.raises(ValueError, match=r"^instruction bank: aspect 'only' has 1 templates, a video needs 2"):
        sample_items(["a"], ProtocolConfig(n_videos=1, n_instructions=2), np.random.default_rng(0),
                     bank=[Instruction("only", "描述这个视频的内容。")])


def test_generate_responses_batches_in_item_order_and_checks_answers():
    videos = {v.video_id: v for v in _videos(3)}
    items = [EvalItem(f"q{k:03d}", f"vid{k % 3:03d}", "overall", f"指令{k}") for k in range(1, 6)]
    calls = []

    def counting(vs, ins):
        calls.append(len(vs))
        return _echo("m")(vs, ins)

    out = generate_responses(items, videos, {"m": counting}, batch_size=2)
    assert calls == [2, 2, 1]
    assert out["m"] == [f"m|{it.video_id}|{it.instruction}" for it in items]
    with pytest.raises(ValueError, match=r"^model 'short': 1 responses for a batch of 2 items \(from q001\)$"):
        generate_responses(items, videos, {"short": lambda vs, ins: ["x"]}, batch_size=2)
    with pytest.raises(ValueError, match=r"^model 'num', item q001: response is int, not str$"):
        generate_responses(items, videos, {"num": lambda vs, ins: [1] * len(vs)})
    with pytest.raises(KeyError, match="item q002: no frames for video 'vid002'"):
        generate_responses(items, {k: v for k, v in videos.items() if k != "vid002"}, {"m": _echo("m")})


def test_video_item_rejects_frames_of_the_wrong_kind():
    with pytest.raises(ValueError, match=r"^video 'x': frames must be a uint8 array \(T, H, W, 3\) with T >= 1, "
                                         r"got float64 \(2, 4, 4, 3\)$"):
        VideoItem("x", np.zeros((2, 4, 4, 3)))


def test_slots_are_shuffled_per_item():
    key = assign_slots([f"q{k}" for k in range(600)], MODELS, np.random.default_rng(0))
    assert all(sorted(slots) == ["A", "B", "C"] and sorted(slots.values()) == sorted(MODELS) for slots in key.values())
    in_slot_a = Counter(slots["A"] for slots in key.values())
    assert all(150 < in_slot_a[m] < 250 for m in MODELS)  # each model first about a third of the time
    assert assign_slots(list(key), MODELS, np.random.default_rng(0)) == key


def test_package_is_blind_complete_and_its_key_restores_the_models(package):
    package_dir, key_path, items, responses = package
    assert sorted(p.name for p in package_dir.iterdir()) == ["frames", "items.json", "rating.html"]
    blind_text = (package_dir / "items.json").read_text(encoding="utf-8") + \
        (package_dir / "rating.html").read_text(encoding="utf-8")
    assert not any(m in blind_text for m in MODELS)

    manifest, key = read_manifest(package_dir), read_key(key_path)
    assert key["package_id"] == manifest["package_id"] and key["models"] == list(MODELS)
    for k, (it, entry) in enumerate(zip(items, manifest["items"])):
        assert (entry["item_id"], entry["video_id"], entry["instruction"]) == (it.item_id, it.video_id, it.instruction)
        assert sorted(entry["responses"]) == ["A", "B", "C"]
        for slot, text in entry["responses"].items():
            assert text == responses[key["assignment"][it.item_id][slot]][k]
        for name in entry["frames"]:
            with Image.open(package_dir / "frames" / name) as img:
                assert img.size == (10, 8) and img.mode == "RGB"
    videos = {entry["video_id"] for entry in manifest["items"]}
    assert len(list((package_dir / "frames").iterdir())) == 2 * len(videos)


def test_key_inside_the_package_is_refused(tmp_path):
    videos = _videos(1)
    items = [EvalItem("q001", "vid000", "overall", "描述这个视频的内容。")]
    with pytest.raises(ValueError, match=r"key .*key\.json lies inside the package .*pkg: raters would see the models"):
        write_package(tmp_path / "pkg", tmp_path / "pkg" / "key.json", items, videos, {"m": ["x"]},
                      np.random.default_rng(0))


def test_page_is_offline_and_cannot_be_broken_by_a_response_or_an_instruction():
    hostile = '</script><script>alert("x")</script> <!-- __SCRIPT__'
    image = '<img src=x onerror="alert(1)">'
    manifest = {"package_id": "<b>abc</b>", "slots": ["A", "B"], "grades": {"A": "a"},
                "items": [{"item_id": "q001", "video_id": "v", "aspect": "overall", "instruction": f"{image}{hostile}",
                           "frames": ["f.jpg"], "responses": {"A": hostile, "B": image}}]}
    page = render_page(manifest, {"f.jpg": b"\xff\xd8jpeg"})
    assert page.count("<script") == 4 and page.count("</script>") == 4
    assert "<img" not in page and "<b>" not in page and "<title>视频指令评测 · &lt;b&gt;abc&lt;/b&gt;</title>" in page
    assert "http://" not in page and "https://" not in page
    assert "data:image/jpeg;base64,/9hqcGVn" in page
    data = re.search(r'<script type="application/json" id="package">(.*?)</script>', page, re.S).group(1)
    item = json.loads(data)["items"][0]
    assert (item["instruction"], item["responses"]) == (f"{image}{hostile}", {"A": hostile, "B": image})
    with pytest.raises(KeyError, match="frame 'f.jpg' named in the manifest was not given"):
        render_page(manifest, {})


# -- ratings import --------------------------------------------------------------------------------------------


def _write_csv(path: Path, rows: list[list[str]]) -> Path:
    pd.DataFrame(rows, columns=list(RATINGS_COLUMNS)).to_csv(path, index=False)
    return path


def test_ratings_round_trip_de_blinds_with_the_key(package, tmp_path):
    package_dir, key_path, items, _ = package
    key = read_key(key_path)
    rows = [["ann", it.item_id, slot, grade, "1" if slot == "B" else "0", "2024-01-01T00:00:00Z"]
            for it in items for slot, grade in zip("ABC", "ABc")]
    out = read_ratings(_write_csv(tmp_path / "ratings.csv", rows), package_dir, key_path)
    assert len(out) == 3 * len(items)
    assert list(out["grade"][:3]) == ["A", "B", "C"]
    assert list(out["model"]) == [key["assignment"][r[1]][r[2]] for r in rows]
    assert out["best"].sum() == len(items) and not out["simulated"].any()
    assert list(out["video_id"][:1]) == [items[0].video_id]
    assert out.attrs["source"] == f"human raters: {tmp_path / 'ratings.csv'}"


@pytest.mark.parametrize("row, problem", [
    (["", "q001", "A", "A", "0", "t"], "missing rater name"),
    (["ann", "q999", "A", "A", "0", "t"], "unknown item_id 'q999'"),
    (["ann", "q001", "E", "A", "0", "t"], "unknown slot 'E' for item q001 (slots A, B, C)"),
    (["ann", "q001", "A", "E", "0", "t"], "grade 'E' is not one of A, B, C, D"),
    (["ann", "q001", "A", "", "0", "t"], "grade '' is not one of A, B, C, D"),
    (["ann", "q001", "A", "A", "yes", "t"], "best must be 0 or 1, got 'yes'"),
    (["ann", "q001", "B", "A", "0", "t"], "duplicate of {csv} row 2 (rater 'ann', item q001, slot B)"),
    (["ann", "q001", "C", "", "1", "t"], "a second best pick for item q001 by rater 'ann' (the first is {csv} row 2)"),
])
def test_invalid_rating_rows_are_named_by_file_and_row(package, tmp_path, row, problem):
    package_dir, key_path, _, _ = package
    csv = tmp_path / "ratings.csv"
    _write_csv(csv, [["ann", "q001", "B", "A", "1", "t"], ["bob", "q002", "A", "D", "0", "t"], row])
    expected = f"1 invalid rating row(s):\n  {csv} row 4: {problem.format(csv=csv)}"
    with pytest.raises(RatingsError) as err:
        read_ratings(csv, package_dir, key_path)
    assert str(err.value) == expected


def test_ratings_errors_list_every_row_and_check_the_files(package, tmp_path):
    package_dir, key_path, _, _ = package
    csv = _write_csv(tmp_path / "r.csv", [["", "q001", "A", "A", "0", "t"]] * 12)
    with pytest.raises(RatingsError, match=r"^12 invalid rating row\(s\):\n  .*r\.csv row 2: missing rater name\n"
                                           r"(.|\n)*row 11: missing rater name\n  … and 2 more$"):
        read_ratings(csv, package_dir, key_path)
    pd.DataFrame({"rater": ["ann"], "item_id": ["q001"]}).to_csv(tmp_path / "cols.csv", index=False)
    with pytest.raises(RatingsError, match=r"cols\.csv: missing column\(s\) \['slot', 'grade', 'best', 'timestamp'\]"):
        read_ratings(tmp_path / "cols.csv", package_dir, key_path)
    other_key = tmp_path / "other_key.json"
    other_key.write_text(json.dumps({**read_key(key_path), "package_id": "000000000000"}))
    with pytest.raises(RatingsError, match=r"the key is for package 000000000000, the ratings' package is \w{12}"):
        read_ratings(_write_csv(tmp_path / "ok.csv", [["a", "q001", "A", "A", "0", "t"]]), package_dir, other_key)

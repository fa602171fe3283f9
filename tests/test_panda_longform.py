"""The long-form mini-Youku set: ground truth matches what is rendered, determinism, texts and their flags."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from vlstudy.data.mini_youku.longform import (MIN_SCENE_GAP, RELEVANCE, LongformConfig, generate_longform,
                                              plan_longform)
from vlstudy.data.mini_youku.render import ShotSpec, VideoSpec, _render_shot, render, render_events
from vlstudy.data.mini_youku.world import CLASSES
from vlstudy.data.video import read_frames, video_info

SMALL = LongformConfig(seed=3, sources=4, duration=(30.0, 40.0))


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("longform")
    return root, generate_longform(SMALL, root)


def test_structure_of_the_ground_truth():
    for truth, specs in plan_longform(replace(SMALL, sources=12)):
        events, shots = truth["events"], truth["shots"]
        assert events[0]["start_frame"] == 0 and events[-1]["end_frame"] == truth["n_frames"]
        assert all(a["end_frame"] == b["start_frame"] for a, b in zip(events[:-1], events[1:]))
        assert all(a["end_frame"] == b["start_frame"] for a, b in zip(shots[:-1], shots[1:]))
        assert [e["end_frame"] - e["start_frame"] for e in events] == [s.n_frames for s in specs]
        assert all(s["end_frame"] - s["start_frame"] >= SMALL.min_shot * SMALL.fps for s in shots)
        for a, b in zip(events[:-1], events[1:]):  # consecutive events look different (designed property)
            sa, sb = a["scene_index"], b["scene_index"]
            assert (sa != sb) if min(sa, sb) < 0 else abs(sa - sb) >= MIN_SCENE_GAP
        for b in truth["boundaries"]:
            half = events[[e["start_frame"] for e in events].index(b["frame"])]["transition_frames"] \
                if b["level"] == "event" else 0
            assert b["span"] == [b["frame"] - half, b["frame"] + half] and b["time"] == b["frame"] / SMALL.fps
        event_starts = {b["frame"] for b in truth["boundaries"] if b["level"] == "event"}
        assert event_starts == {e["start_frame"] for e in events[1:]}
        assert [s["start_frame"] for s in truth["static_segments"]] == [e["start_frame"] for e in events if e["static"]]
        for e, spec in zip(events, specs):
            assert spec.scene == e["scene_index"] and spec.shots[0].transition == e["transition"]
            if e["static"]:
                assert all(s.pan_velocity == (0.0, 0.0) and s.amplitude == 0.0 and s.zoom_velocity == 0.0
                           for s in spec.shots)
            if e["repeat_of"] is not None:
                assert e["label"] == events[e["repeat_of"]]["label"] and e["repeat_of"] < e["index"] - 1


def test_boundaries_match_the_rendered_frames():
    """Away from transitions each event's frames are exactly what its own spec renders (no noise)."""
    truth, specs = plan_longform(SMALL)[1]
    video = render_events(specs, noise_seed=0, noise_std=0.0).astype(np.int16)
    for event, spec in zip(truth["events"], specs):
        alone = np.concatenate([_render_shot(spec, shot) for shot in spec.shots]) * np.float32(spec.brightness)
        alone = np.clip(alone, 0, 255).astype(np.int16)
        inside = slice(6, len(alone) - 6)  # transitions last at most 6 frames per side at 4 fps
        assert np.abs(video[event["start_frame"]:event["end_frame"]][inside] - alone[inside]).max() <= 1


def test_generated_files_and_manifest(generated):
    root, manifest = generated
    assert json.loads((root / "manifest.json").read_text(encoding="utf-8")) == manifest
    assert manifest["counts"]["sources"] == 4 and manifest["config"]["seed"] == 3
    for source in manifest["sources"]:
        info = video_info(root / source["file"])
        assert (info.num_frames, info.fps, info.width) == (source["n_frames"], 4.0, 64)
        frames = read_frames(root / source["file"], np.arange(source["n_frames"])).astype(np.float32)
        change = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))  # change[t]: frame t -> t + 1
        hard = [b["frame"] for b in source["boundaries"] if b["level"] == "event" and b["transition"] == "cut"]
        quiet = np.ones(len(change), bool)
        for b in source["boundaries"]:
            quiet[max(b["span"][0] - 2, 0):b["span"][1] + 1] = False
        for frame in hard:  # the decoded video changes most exactly where the ground truth puts a hard cut
            assert change[frame - 1] > 3 * np.percentile(change[quiet], 95)


def test_same_seed_same_set_other_seed_other_set():
    dump = lambda cfg: json.dumps([t for t, _ in plan_longform(cfg)], sort_keys=True)  # noqa: E731
    assert dump(SMALL) == dump(SMALL)
    assert dump(SMALL) != dump(replace(SMALL, seed=4))
    first = plan_longform(replace(SMALL, sources=2))[1][0]
    assert first == plan_longform(SMALL)[1][0]  # a source does not depend on how many are generated


def test_texts_and_their_relevance_flags():
    seen = set()
    for truth, _ in plan_longform(replace(SMALL, sources=30)):
        labels = {e["label"] for e in truth["events"]}
        assert (truth["meta_label"] not in labels) == truth["meta_misleading"]
        for e in truth["events"]:
            design = CLASSES[e["label"]]
            meta = "event" if truth["meta_label"] == e["label"] else (
                "unrelated" if truth["meta_misleading"] else "other_event")
            assert e["title_relevance"] == e["description_relevance"] == meta
            seen |= {e["subtitles_relevance"], e["title_relevance"]}
            # subject + activity is unique per class: only the event's own speech names them
            assert (f"{design.subject}正在{design.activity}" in e["subtitles"]) == (e["subtitles_relevance"] == "event")
            assert e["misleading"] == {"title": meta in ("other_event", "unrelated"),
                                       "description": meta in ("other_event", "unrelated"),
                                       "subtitles": e["subtitles_relevance"] in ("other_event", "unrelated")}
            assert len(e["references"]) == SMALL.references and all(len(r) >= 15 for r in e["references"])
            assert design.subject in e["references"][0]
    assert seen == set(RELEVANCE)


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="frame_size must be even"):
        LongformConfig(frame_size=63)
    with pytest.raises(ValueError, match="p_static must be a probability"):
        LongformConfig(p_static=1.5)
    with pytest.raises(ValueError, match="transitions of 3.0 s per side do not fit shots of 4.0 s"):
        LongformConfig(transition_seconds=(1.0, 3.0))


def test_render_keeps_the_legacy_fade_and_adds_long_fades_and_dissolves():
    def shot(n, transition="none", frames=0):
        return ShotSpec(n, transition, (3.0, 4.0), (0.5, 0.2), 1.0, (32.0, 30.0), 10.0, 9.0, 0.0, 6.0,
                        transition_frames=frames)

    def spec(*shots):
        return VideoSpec(2, "disc", "orbit", (226, 40, 40), shots, noise_std=0.0)

    a, b = shot(12), shot(12, "cut")
    plain = render(spec(a, b)).astype(np.float32)
    legacy = render(spec(a, replace(b, transition="fade"))).astype(np.float32)
    assert np.array_equal(legacy[:10], plain[:10]) and np.array_equal(legacy[14:], plain[14:])
    assert np.abs(legacy[10:14] - plain[10:14] * np.array([.55, .15, .15, .55])[:, None, None, None]).max() <= 1
    fade = render(spec(a, replace(b, transition="fade", transition_frames=3))).astype(np.float32)
    ramp = np.array([.75, .5, .25, .25, .5, .75])[:, None, None, None]
    assert np.abs(fade[9:15] - plain[9:15] * ramp).max() <= 1
    dissolve = render(spec(a, replace(b, transition="dissolve", transition_frames=2))).astype(np.float32)
    long_a = render(spec(shot(14))).astype(np.float32)           # shot a, continued 2 frames
    early_b = render(spec(replace(b, transition="none", n_frames=14, phase=-2 * 2 * np.pi / 9,
                                  pan=(3.0 - 1.0, 4.0 - 0.4)))).astype(np.float32)  # shot b, started 2 frames early
    alpha = np.array([.125, .375, .625, .875])[:, None, None, None]
    assert np.abs(dissolve[10:14] - ((1 - alpha) * long_a[10:14] + alpha * early_b[:4])).max() <= 1

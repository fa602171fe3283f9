"""The study's models: TimeSformer video encoder, visual abstractor, mPLUG-video, the small Chinese LM, ALPRO."""

from vlstudy.models.abstractor import Abstractor, AbstractorConfig
from vlstudy.models.alpro import ALPRO, ALPROConfig, TextEncoderConfig
from vlstudy.models.checkpoint_io import CheckpointError
from vlstudy.models.mplug_video import (
                                        MATCH_ANSWERS,
                                        PROTOCOL_TEXTS,
                                        ClassScores,
                                        MatchScores,
                                        MPLUGVideo,
                                        MPLUGVideoConfig,
                                        classification_prompt,
                                        match_prompt,
                                        tokenize_prompts,
)
from vlstudy.models.text_lm import (
                                        PackedTextDataset,
                                        TextLMConfig,
                                        build_text_lm,
                                        load_text_lm,
                                        save_text_lm,
                                        train_char_tokenizer,
)
from vlstudy.models.video_encoder import VideoEncoder, VideoEncoderConfig

__all__ = ["Abstractor", "AbstractorConfig", "ALPRO", "ALPROConfig", "TextEncoderConfig", "CheckpointError",
           "MATCH_ANSWERS", "PROTOCOL_TEXTS", "ClassScores", "MatchScores", "MPLUGVideo", "MPLUGVideoConfig",
           "classification_prompt", "match_prompt", "tokenize_prompts", "PackedTextDataset", "TextLMConfig",
           "build_text_lm", "load_text_lm", "save_text_lm", "train_char_tokenizer", "VideoEncoder",
           "VideoEncoderConfig"]

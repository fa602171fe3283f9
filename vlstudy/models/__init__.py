"""The study's models: TimeSformer video encoder, visual abstractor, mPLUG-video, the small Chinese LM, ALPRO.

Each model is a transformers ``PreTrainedConfig`` / ``PreTrainedModel`` family (a backbone and thin task heads):
build a new one with ``Class(config)``, save with ``save_pretrained(dir)``, load with ``Class.from_pretrained(dir)``
(local safetensors, strict: see `vlstudy.models.loading`).
"""

from vlstudy.models.abstractor import Abstractor, AbstractorConfig
from vlstudy.models.alpro import ALPROConfig, ALPROForClassification, ALPROForPretraining, ALPROModel, TextEncoderConfig
from vlstudy.models.loading import CheckpointError
from vlstudy.models.mplug_video import (
                                        MATCH_ANSWERS,
                                        PROTOCOL_TEXTS,
                                        ClassScores,
                                        MatchScores,
                                        MPLUGVideoConfig,
                                        MPLUGVideoForClassification,
                                        MPLUGVideoForContrastive,
                                        MPLUGVideoForMatching,
                                        MPLUGVideoModel,
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
from vlstudy.models.video_encoder import VideoEncoderConfig, VideoEncoderModel

__all__ = ["Abstractor", "AbstractorConfig", "ALPROConfig", "ALPROModel", "ALPROForPretraining",
           "ALPROForClassification", "TextEncoderConfig", "CheckpointError", "MATCH_ANSWERS", "PROTOCOL_TEXTS",
           "ClassScores", "MatchScores", "MPLUGVideoConfig", "MPLUGVideoModel", "MPLUGVideoForContrastive",
           "MPLUGVideoForClassification", "MPLUGVideoForMatching", "classification_prompt", "match_prompt",
           "tokenize_prompts", "PackedTextDataset", "TextLMConfig", "build_text_lm", "load_text_lm", "save_text_lm",
           "train_char_tokenizer", "VideoEncoderConfig", "VideoEncoderModel"]

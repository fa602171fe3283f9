"""The prompts of the official Youku-mPLUG code, in one place.

mPLUG-video scores these prompts (`vlstudy.models.mplug_video`), and the mini-Youku text corpus writes pages in the
same formats (`vlstudy.data.mini_youku.text.corpus_lines`), the way a real Chinese LM has read video-site pages
with a title and a category field before it meets any video. Official code: ``run_cls_distributed_gpt3.py``
(classification) and the retrieval fine-tuning script (matching), X-PLUG/Youku-mPLUG.
"""

from __future__ import annotations

from vlstudy.data.classes import CLASS_NAMES

__all__ = ["MAX_TITLE_CHARS", "MATCH_ANSWERS", "classification_prompt", "match_prompt", "PROTOCOL_TEXTS"]

MAX_TITLE_CHARS = 65  # the official classification prompt keeps title[:65]
MATCH_ANSWERS = ("是", "否")


def classification_prompt(title: str) -> str:
    """The official classification prompt; the class name is its continuation."""
    return f"视频标题：{title[:MAX_TITLE_CHARS]} 视频类目："


def match_prompt(text: str) -> str:
    """The official video-text matching prompt; 是 (yes) or 否 (no) is its continuation."""
    return f"标题：{text} 这个视频与标题匹配吗？"


# Every character the protocol scores: pass to `text_lm.train_char_tokenizer(always_include=...)`.
PROTOCOL_TEXTS: tuple[str, ...] = (classification_prompt(""), match_prompt(""), *MATCH_ANSWERS, *CLASS_NAMES)

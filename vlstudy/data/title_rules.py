"""The title rules of Youku-mPLUG §3.1: word count, Chinese characters, advertising, meaningless titles.

The paper keeps titles of 5-30 words (jieba) with at least 5 Chinese characters and drops advertising and
meaningless titles; `vlstudy.data.filters` applies these rules to the pool, and the mini-Youku generator uses the
word count to make normal titles.

Word count (`title_word_count`): the number of tokens of ``jieba.Tokenizer().lcut(title)`` (jieba 0.42.1, default
dictionary, accurate mode, HMM on) that contain at least one letter or number (Unicode categories L* and N*);
whitespace, punctuation and symbol/emoji tokens do not count. A CJK character is one in the CJK Unified
Ideographs blocks (basic, extension A, compatibility, and the supplementary planes).
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

import numpy as np

__all__ = ["AD_WORDS", "AD_PATTERNS", "PLACEHOLDER_TITLES", "title_words", "title_word_count", "cjk_count",
           "is_ad_title", "is_meaningless_title"]

_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")

AD_WORDS: tuple[str, ...] = (
    "加微信", "加微", "微信号", "威信", "薇信", "V信", "v信", "加V", "加v", "QQ群", "qq群", "扣扣", "加群", "进群",
    "淘宝", "天猫", "拼多多", "链接", "领取", "优惠券", "折扣", "包邮", "私信", "扫码", "二维码", "代购", "免费送",
    "免费领", "关注有礼", "点击购买",
)
"""Contact and promotion words. One counts only when it starts and ends on jieba word boundaries, so the
天猫 (Tmall) inside 今天/猫咪 does not."""
AD_PATTERNS: tuple[str, ...] = (
    r"(?<![a-zA-Z])(?:vx|wx|qq)(?![a-zA-Z])",  # contact handles
    r"1[3-9]\d{9}|\d{3}[\s-]\d{4}[\s-]\d{4}|\d{7,}",  # mobile numbers, grouped numbers, long digit runs
    r"https?://|www\.|\.(?:com|cn|net|top|xyz)(?![a-zA-Z])",  # URLs
)
"""Advertising patterns matched anywhere in the title (case-insensitive)."""
_AD_WORD = re.compile("(?=(%s))" % "|".join(map(re.escape, AD_WORDS)))  # lookahead: overlapping matches
_AD_PATTERN = re.compile("|".join(f"(?:{p})" for p in AD_PATTERNS), re.IGNORECASE)

PLACEHOLDER_TITLES = ("无标题", "未命名", "未知", "新建视频", "视频", "随便拍拍", "随便拍", "随手拍", "测试", "录屏",
                      "屏幕录制", "video", "vid", "mov", "img", "test", "untitled")
"""Titles that are a placeholder, optionally followed by digits or punctuation (视频123, VID_2023)."""
_PLACEHOLDER = re.compile(r"^(?:%s)[\W\d_]*$" % "|".join(PLACEHOLDER_TITLES), re.IGNORECASE)
_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_LATIN_RUN = re.compile(r"[a-zA-Z]{5,}")


@cache
def _tokenizer():
    """A private jieba tokenizer (default dictionary), so user dictionaries added elsewhere do not change counts."""
    import jieba

    jieba.setLogLevel(60)
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    return tokenizer


def _is_word(token: str) -> bool:
    return any(unicodedata.category(ch)[0] in "LN" for ch in token)


def title_words(title: str) -> list[str]:
    """The jieba words of a title that count (module docstring): tokens with a letter or number."""
    return [t for t in _tokenizer().lcut(title) if _is_word(t)]


def title_word_count(title: str) -> int:
    """Number of jieba words of a title, as the title-length filter counts them (module docstring)."""
    return len(title_words(title))


def cjk_count(title: str) -> int:
    """Number of CJK ideographs in a title."""
    return len(_CJK.findall(title))


def is_ad_title(title: str) -> bool:
    """True when the title has an advertising word on word boundaries (``AD_WORDS``) or pattern (``AD_PATTERNS``)."""
    if _AD_PATTERN.search(title):
        return True
    spans = [(m.start(), m.start() + len(m.group(1))) for m in _AD_WORD.finditer(title)]
    if not spans:
        return False
    boundaries = set(np.cumsum([0, *map(len, _tokenizer().lcut(title))]).tolist())
    return any(start in boundaries and end in boundaries for start, end in spans)


def is_meaningless_title(title: str) -> bool:
    """True when a title carries no content.

    The rules, on the title's letters and numbers (Unicode L*, N*): none at all (punctuation, emoji); only
    digits; at least 3 of them but at most 2 distinct (哈哈哈哈, 666666); a placeholder (``PLACEHOLDER_TITLES``,
    e.g. 无标题, 视频123); one word repeated (好看好看好看); a run of 5+ Latin letters typed on one keyboard row
    (asdfgh, qwerty: keyboard mash; English words typed on one row, e.g. "pretty", also match).
    """
    content = [ch for ch in title if unicodedata.category(ch)[0] in "LN"]
    if not content or all(unicodedata.category(ch) == "Nd" for ch in content):
        return True
    if len(content) >= 3 and len(set(content)) <= 2:
        return True
    if _PLACEHOLDER.match(title.strip()):
        return True
    words = title_words(title)
    if len(words) >= 2 and len(set(words)) == 1:
        return True
    return any(any(set(run.lower()) <= set(row) for row in _KEYBOARD_ROWS) for run in _LATIN_RUN.findall(title))

"""The texts of mini-Youku: titles, captions, VideoMind layers, 6W tags, descriptions, subtitles, bad titles.

Every text is assembled from the fixed world (:mod:`vlstudy.data.mini_youku.world`) and a video's drawn cues,
with an explicit ``numpy.random.Generator``:

* **benchmark titles** (classification) carry only the designed language cues: the format group's wording
  (with probability ``p_group``) and a class keyword (``p_keyword``), padded with class-neutral filler. They do
  not name the scene or the object: vision must supply those.
* **pool titles** (pre-training) read like real uploads: they often name what is seen (the object, its motion,
  the place, who is in it) besides wording and keywords; this is what pre-training learns from.
* **captions** describe subject, action, object and background (>= 15 CJK characters); val/test items get
  several paraphrases as references.
* **VideoMind layers** (Yang et al. 2025, §3.1) and **6W tags** (§3.2), below; Panda-70M style description and
  subtitles.

VideoMind layers: designed evidence. What a mini-Youku video *shows* is its scene (or a neutral grey room), one
moving object (the class's colour + shape + motion, or a grey distractor with a random shape and motion) and
its brightness (night or day); the class is visible only through these (scene: 3 classes, object: 1), and the
subject, activity, topic and intent of a text are the class's (``world._SEMANTICS``). Each layer carries:

=========  ===============================================  ==================================================
layer      text                                             evidence it carries
=========  ===============================================  ==================================================
factual    ``[夜晚，]{where}，{subject}在{activity}，一个``      class; place (scene shown or not); object colour +
           ``{object}{motion}。``                             shape (or the distractor's); motion; time of day
abstract   ``这是一段关于{topic}的视频。`` (half), or the       class; the place in half of the videos; no object,
           place named: ``这是一段在{where}拍摄的{topic}``     no motion, no time of day
           ``视频。`` / ``视频围绕{topic}展开，地点在{where}。``
intent     ``[主体]通过[动作]旨在[意图]。``, told by the         protagonist (1/2) or uploader with the class's
           protagonist (role B, 1/2: ``{subject}通过``        purpose (1/4): the class only; uploader with the
           ``{activity}旨在{class intent}``) or the uploader  group's purpose (1/4): only the format group (15
           (role A: ``视频作者通过分享这段视频旨在…``) stating    classes, not visible: inferable from the class, a
           the class's intent (1/2) or its format group's     title cue otherwise); never place, object, motion
           generic purpose (1/2)                              or time of day
=========  ===============================================  ==================================================

So each layer's text is consistent with fewer and fewer videos: a factual text with the few videos of its class
shown the same way, an abstract one with every video of its class, an intent one with every video of its class
or, a quarter of the time, of its format group (a third of all videos). Retrieval from the intent layer is
therefore designed to be the hardest and from the factual layer the easiest, in both directions (the paper's
Tables 2-3 ordering): a perfect video recogniser still ties among the videos a text cannot tell apart.

6W tags, one JSON object per video (keys sorted): who = the class's subject, what = its topic (the event, as
the abstract names it), when = 白天 / 夜晚, where = the place phrase, why = the purpose the intent layer states,
how = the class's activity (the intent's [动作] for the protagonist). The paper reads subject, action and intent
off the intent layer and place, time and event off the abstract layer; here they come from the same draws.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from vlstudy.data.mini_youku.world import CLASSES, COLOURS, DISTRACTOR_COLOUR, GROUPS, MOTIONS, SCENES, SHAPES
from vlstudy.data.prompts import MATCH_ANSWERS, classification_prompt, match_prompt

__all__ = ["Cues", "Intent", "corpus_lines", "benchmark_title", "pool_title", "caption", "references", "draw_intent",
           "videomind_layers", "tags_6w", "description", "subtitles", "ad_title", "meaningless_title", "short_title",
           "long_title", "where", "P_ABSTRACT_PLACE", "P_UPLOADER", "P_GROUP_PURPOSE"]


@dataclass(frozen=True)
class Cues:
    """What a video shows and what its title may say (drawn once per video)."""

    label: int
    scene_shown: bool
    object_shown: bool
    group_cue: bool
    keyword_cue: bool
    shape: str  # the shape actually shown (the class's, or the distractor's)
    motion: str
    night: bool = False

    @property
    def design(self):
        return CLASSES[self.label]

    @property
    def object_words(self) -> str:
        colour = COLOURS[self.design.look.colour][0] if self.object_shown else DISTRACTOR_COLOUR[0]
        return f"{colour}的{SHAPES[self.shape]}"


_LOCATIVE = {"舞台": "舞台上", "球场": "球场上", "广场": "广场上", "街道": "街道上", "山野": "山野间", "电脑屏幕前": "电脑屏幕前"}
_PREFIX = ("今天", "大家好", "最新", "独家", "高清", "必看", "收藏", "分享", "周末", "来了")
_SUFFIX = ("值得一看", "你们觉得呢", "记得点赞", "欢迎关注", "太精彩了", "一起来看吧", "超级好看", "建议收藏", "不看后悔", "第二弹")
_EPISODE = ("第{n}期", "第{n}集", "【{n}】", "vol.{n}", "{m}月{d}日")
_CONNECT = ("真的", "这个", "居然", "原来", "竟然", "终于")


def where(cues: Cues) -> str:
    """The place phrase of a video, e.g. 舞台上 / 厨房里 / 室内."""
    if not cues.scene_shown:
        return "室内"
    name = SCENES[cues.design.scene].name
    return _LOCATIVE.get(name, f"{name}里")


def _pick(rng: np.random.Generator, options) -> str:
    return options[int(rng.integers(len(options)))]


def _episode(rng: np.random.Generator) -> str:
    return _pick(rng, _EPISODE).format(n=int(rng.integers(1, 99)), m=int(rng.integers(1, 13)), d=int(rng.integers(1, 29)))


def _join(parts: list[str], rng: np.random.Generator) -> str:
    """Join title parts with the separators real titles use."""
    out = parts[0]
    for part in parts[1:]:
        out += _pick(rng, (" ", "，", "！", "", " | ")) + part
    return out


def benchmark_title(cues: Cues, rng: np.random.Generator) -> str:
    """A classification title: designed language cues only, plus class-neutral filler."""
    d = cues.design
    parts = [_pick(rng, _PREFIX)]
    if rng.random() < 0.5:
        parts.append(_episode(rng))
    if cues.group_cue:
        parts.append(_pick(rng, GROUPS[d.group]["phrases"]))
    if cues.keyword_cue:
        parts.append(f"{_pick(rng, _CONNECT)}{_pick(rng, d.keywords)}")
    parts.append(_pick(rng, _SUFFIX))
    if not cues.group_cue and not cues.keyword_cue:
        parts.insert(1, _pick(rng, _CONNECT) + _pick(rng, ("好看", "精彩", "有意思", "不一样")))
    return _join(parts, rng)


def pool_title(cues: Cues, rng: np.random.Generator) -> str:
    """A pre-training title: like an upload title, often naming what is seen."""
    d = cues.design
    parts = []
    if rng.random() < 0.5:
        parts.append(_pick(rng, _PREFIX))
    if cues.keyword_cue:
        parts.append(f"【{_pick(rng, d.keywords)}】")
    if rng.random() < 0.5:
        parts.append(d.subject + d.activity)
    if rng.random() < 0.75:
        seen = f"{cues.object_words}{_pick(rng, MOTIONS[cues.motion])}"
        parts.append(f"{where(cues)}{seen}" if rng.random() < 0.6 else seen)
    elif rng.random() < 0.5:
        parts.append(f"在{where(cues)}")
    if cues.group_cue:
        parts.append(_pick(rng, GROUPS[d.group]["phrases"]))
    parts.append(_pick(rng, _SUFFIX))
    return _join(parts, rng)


_CAPTION_TEMPLATES = (
    "{subj}在{where}{act}，画面中一个{obj}{mot}。",
    "{where}，{subj}正在{act}，一个{obj}{mot}。",
    "一个{obj}在{where}{mot}，旁边{subj}在{act}。",
    "画面中{subj}在{where}{act}，还有一个{obj}不停地{mot}。",
    "视频里{subj}在{where}{act}，同时可以看到一个{obj}{mot}。",
)


def caption(cues: Cues, rng: np.random.Generator) -> str:
    """One caption naming subject, action, object and background (>= 15 CJK characters)."""
    d = cues.design
    template = _pick(rng, _CAPTION_TEMPLATES)
    return template.format(subj=d.subject, act=d.activity, where=where(cues), obj=cues.object_words,
                           mot=_pick(rng, MOTIONS[cues.motion]))


def references(cues: Cues, rng: np.random.Generator, n: int) -> list[str]:
    """`n` distinct paraphrased captions of one video (val/test references)."""
    out: list[str] = []
    for _ in range(20 * n):
        text = caption(cues, rng)
        if text not in out:
            out.append(text)
        if len(out) == n:
            break
    return out


P_ABSTRACT_PLACE = 0.5  # an abstract names the place
P_UPLOADER = 0.5  # an intent is the uploader's (role A) rather than the protagonist's (role B)
P_GROUP_PURPOSE = 0.5  # an uploader states the format group's generic purpose rather than the class's intent
_ABSTRACT_WITH_PLACE = ("这是一段在{where}拍摄的{topic}视频。", "视频围绕{topic}展开，地点在{where}。")
_UPLOADERS = ("视频作者", "上传者", "发布者")
_SHARING = ("发布这段视频", "分享这段视频", "上传这段视频")


@dataclass(frozen=True)
class Intent:
    """The intent layer's slots, "[主体]通过[动作]旨在[意图]" (VideoMind §3.1, step 2).

    Attributes:
        role: ``"protagonist"`` (the paper's role B: the subject in the video) or ``"uploader"`` (role A).
        subject, action, purpose: the three slots.
    """

    role: str
    subject: str
    action: str
    purpose: str

    @property
    def text(self) -> str:
        return f"{self.subject}通过{self.action}旨在{self.purpose}。"


def draw_intent(cues: Cues, rng: np.random.Generator) -> Intent:
    """The intent of one video: the protagonist's, or the uploader's with the class's or the group's purpose."""
    d = cues.design
    if rng.random() >= P_UPLOADER:
        return Intent("protagonist", d.subject, d.activity, d.intent)
    purpose = _pick(rng, GROUPS[d.group]["purpose"]) if rng.random() < P_GROUP_PURPOSE else d.intent
    return Intent("uploader", _pick(rng, _UPLOADERS), _pick(rng, _SHARING), purpose)


def videomind_layers(cues: Cues, rng: np.random.Generator) -> dict[str, str]:
    """VideoMind's three layers and the 6W tags of one video (evidence per layer: the module docstring).

    Draws one number from `rng` (the factual layer's motion phrase); every other draw comes from a child
    generator (``rng.spawn``), which leaves `rng`'s stream, and so every text drawn after the layers, as it was.

    Returns:
        ``factual``, ``abstract``, ``intent`` (texts) and ``tags_6w`` (JSON object string, see :func:`tags_6w`).
    """
    d = cues.design
    motion = _pick(rng, MOTIONS[cues.motion])
    own = rng.spawn(1)[0]
    doing = d.activity if d.activity.startswith("在") else f"在{d.activity}"  # not 在在地里干农活
    factual = f"{'夜晚，' if cues.night else ''}{where(cues)}，{d.subject}{doing}，一个{cues.object_words}{motion}。"
    if own.random() < P_ABSTRACT_PLACE:
        abstract = _pick(own, _ABSTRACT_WITH_PLACE).format(where=where(cues), topic=d.topic)
    else:
        abstract = f"这是一段关于{d.topic}的视频。"
    intent = draw_intent(cues, own)
    return {"factual": factual, "abstract": abstract, "intent": intent.text, "tags_6w": tags_6w(cues, intent)}


def tags_6w(cues: Cues, intent: Intent) -> str:
    """6W tags (who, what, when, where, why, how) as a JSON object string (keys sorted, Chinese unescaped).

    Args:
        cues: the video's cues.
        intent: the video's intent layer (its purpose is the ``why``).
    """
    d = cues.design
    tags = {
        "who": d.subject,
        "what": d.topic,
        "when": "夜晚" if cues.night else "白天",
        "where": where(cues),
        "why": intent.purpose,
        "how": d.activity,
    }
    return json.dumps(tags, ensure_ascii=False, sort_keys=True)


def description(cues: Cues, rng: np.random.Generator) -> str:
    """A Panda-70M style video description (uploader's text)."""
    d = cues.design
    return f"本期视频{d.subject}为大家带来{d.topic}相关内容，{_pick(rng, _SUFFIX)}。"


def subtitles(cues: Cues, rng: np.random.Generator) -> str:
    """Panda-70M style subtitles (speech), a few lines separated by newlines."""
    d = cues.design
    lines = [f"大家好，今天我们来聊聊{_pick(rng, d.keywords)}", f"{d.subject}正在{d.activity}", _pick(rng, _SUFFIX)]
    return "\n".join(lines)


# --- defects (pre-training pool only) ----------------------------------------------------------------------
_AD = ("加微信{num}领取优惠券", "vx:{num} 包邮", "淘宝搜索同款 点击链接购买", "私信我免费送", "扫码关注有礼",
       "QQ群{num}代购", "限时折扣 加V了解", "www.youku-deal{n}.com 领取福利")
_MEANINGLESS = ("哈哈哈哈哈哈哈哈", "无标题", "视频{n}", "。。。。。。", "随便拍拍", "asdfghjkl", "111111", "啊啊啊啊啊啊",
                "测试测试测试", "!!!???")


def ad_title(cues: Cues, rng: np.random.Generator) -> str:
    """An ordinary title with an advertisement pattern inserted."""
    ad = _pick(rng, _AD).format(num=int(rng.integers(10**7, 10**9)), n=int(rng.integers(100)))
    base = pool_title(cues, rng)
    return f"{base} {ad}" if rng.random() < 0.5 else f"{ad} {base}"


def meaningless_title(rng: np.random.Generator) -> str:
    return _pick(rng, _MEANINGLESS).format(n=int(rng.integers(1, 999)))


def short_title(cues: Cues, rng: np.random.Generator) -> str:
    """Two to four words: too short a title to describe anything."""
    d = cues.design
    return _pick(rng, (f"{_pick(rng, d.keywords)}视频", f"{_pick(rng, _PREFIX)}{_pick(rng, d.keywords)}", "好看"))


def long_title(cues: Cues, rng: np.random.Generator) -> str:
    """More than 30 words: several titles run together."""
    return "，".join(pool_title(cues, rng) for _ in range(5))


_CHANNEL = ("优酷频道：{name}", "{name}频道精选", "热门分类 {name}", "更多{name}视频", "分类：{name}")


def corpus_lines(cues: Cues, other: Cues, rng: np.random.Generator) -> list[str]:
    """Web-like text about one imagined video: what a Chinese LM would have read before any video data.

    The text-LM stage trains the frozen decoder on these lines (plus the pool's titles). They use the world's
    vocabulary — captions, titles, the VideoMind layers, descriptions, subtitles — and, like a video site's page,
    a title next to its channel (category). They belong to no video of the dataset.

    Two lines follow a caption in the formats the protocol scores (`vlstudy.data.prompts`): the page's title and
    category (``视频标题：… 视频类目：…``), and a yes/no question whether a caption — a paraphrase of this video's
    or `other`'s — fits (``标题：… 这个视频与标题匹配吗？是/否``). A real Chinese LM has read such pages and questions;
    mPLUG-video's frozen decoder must already read a category or an answer off what precedes the prompt, since
    its visual prefix stands exactly where the caption stands here.
    """
    d = cues.design
    layers = videomind_layers(cues, rng)
    channel = _pick(rng, _CHANNEL).format(name=d.name)
    match = bool(rng.random() < 0.5)
    asked = caption(cues if match else other, rng)
    return [
        caption(cues, rng), f"{classification_prompt(benchmark_title(cues, rng))}{d.name}",
        caption(cues, rng), f"{match_prompt(asked)}{MATCH_ANSWERS[0] if match else MATCH_ANSWERS[1]}",
        pool_title(cues, rng), f"{benchmark_title(cues, rng)}（{channel}）", layers["abstract"], layers["intent"],
        description(cues, rng), *subtitles(cues, rng).split("\n"),
    ]

"""The fixed world of mini-Youku: what each of the 45 categories looks like and how its titles read.

mini-Youku is synthetic, and its category evidence is *designed* to be split between vision and language,
so that the paper's modality ablation (Table 6: vision only < vision + language < vision + language +
pre-training, and language only weakest) can be reproduced and explained. Every class ``c`` has

* a **scene** ``s(c)`` (one of 15 textured backgrounds, 3 classes per scene) — an easy visual cue;
* a **format group** ``g(c)`` (教程 / 搞笑 / 记录, 15 classes per group) that title wording reveals — an easy text
  cue. Scenes and groups are orthogonal: the 3 classes of a scene fall in 3 different groups, so scene and
  group together name exactly one class;
* an **object** ``o(c)``: a unique (colour, shape, motion) triple, e.g. 红色圆球 上下弹跳 — a hard visual cue
  (a small moving shape; its motion is only visible across frames), which the unlabeled pre-training pool
  teaches because pool titles and captions name it;
* **keywords** (the class name and near-synonyms) — a rare text cue.

Per video the cues are drawn independently: the scene is shown with probability ``p_scene`` (otherwise a
neutral grey room), the object with ``p_object`` (otherwise a grey distractor shape with a random motion), the
title carries the group wording with ``p_group`` and a class keyword with ``p_keyword``. Because shown cues are
unambiguous, the Bayes-optimal accuracy of a model that sees only some cues has a closed form
(:func:`designed_ceilings`): the posterior is uniform over the classes consistent with what was seen.

With the default classification probabilities (p_scene 0.85, p_object 0.6, p_group 0.7, p_keyword 0.2) the
designed ceilings are: vision only 0.72, language only 0.24, vision + language 0.90; a vision + language model
that reads only the easy cues (scene, wording, keyword) reaches 0.75 — the object cue is where pre-training
helps. The statistics report prints these numbers from the generator's configuration.

The world is fixed (it does not depend on the seed); the seed only draws videos from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np

from vlstudy.data.classes import CLASS_NAMES, NUM_CLASSES

__all__ = ["Scene", "ObjectLook", "ClassDesign", "SCENES", "NEUTRAL_SCENE", "GROUPS", "COLOURS", "SHAPES",
           "MOTIONS", "SCENE_TEXTS", "CLASSES", "designed_ceilings"]


@dataclass(frozen=True)
class Scene:
    """A background: a pattern in two colours (RGB 0..255), with its Chinese place name."""

    name: str
    pattern: str  # hstripes | vstripes | checker | diagonal | rings | flat
    colour_a: tuple[int, int, int]
    colour_b: tuple[int, int, int]
    period: float  # pattern period in pixels at 64 px


@dataclass(frozen=True)
class ObjectLook:
    colour: str  # key of COLOURS
    shape: str  # key of SHAPES
    motion: str  # key of MOTIONS

    @property
    def words(self) -> str:
        """e.g. 红色圆球"""
        return f"{COLOURS[self.colour][0]}{SHAPES[self.shape]}"


@dataclass(frozen=True)
class ClassDesign:
    index: int
    name: str
    scene: int
    group: int
    look: ObjectLook
    subject: str  # who is in the video, e.g. 一位歌手
    activity: str  # what the subject does, e.g. 深情演唱
    keywords: tuple[str, ...]
    intent: str  # why the video was made (VideoMind intent layer)
    topic: str  # what the video is about (VideoMind abstract layer)


# 15 scenes: each a muted hue of its own (24 degrees apart: an easy cue even for a tiny video encoder) with one of
# 5 textures. The objects are saturated, so they stand out from every background.
_PATTERNS = ("hstripes", "vstripes", "checker", "diagonal", "rings")
_SCENE_NAMES = (
    "舞台", "演播室", "影院", "球场", "厨房",
    "客厅", "儿童房", "广场", "化妆间", "教室",
    "办公室", "山野", "街道", "电脑屏幕前", "公寓",
)


def _muted(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    import colorsys

    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(hue, saturation, value))


SCENES: tuple[Scene, ...] = tuple(
    Scene(name, _PATTERNS[i % 5], _muted(i / 15, 0.35, 0.66), _muted(i / 15, 0.45, 0.46), period=8.0 + 2.0 * (i % 3))
    for i, name in enumerate(_SCENE_NAMES)
)
NEUTRAL_SCENE = Scene("室内", "flat", (128, 128, 128), (118, 118, 118), period=16.0)

# Format groups: the title wording that reveals the group (15 classes each).
# "purpose": the group's generic intent, which an uploader-side VideoMind intent may state instead of the class's.
GROUPS: tuple[dict[str, tuple[str, ...]], ...] = (
    {"name": ("教程",), "phrases": ("手把手教你", "一看就会的教程", "新手入门教学", "超实用的技巧分享", "详细讲解步骤", "干货攻略来了"),
     "purpose": ("教会观众一项实用的本领",)},
    {"name": ("搞笑",), "phrases": ("笑到肚子疼", "太逗了哈哈", "爆笑名场面", "沙雕又欢乐", "全程高能笑点", "网友笑疯了"),
     "purpose": ("让观众放松一下",)},
    {"name": ("记录",), "phrases": ("记录一下今天", "真实的日常vlog", "现场实拍画面", "随手记录的瞬间", "一起来看看现场", "分享我的一天"),
     "purpose": ("留住值得纪念的瞬间",)},
)

COLOURS: dict[str, tuple[str, tuple[int, int, int]]] = {
    "red": ("红色", (226, 40, 40)),
    "yellow": ("黄色", (240, 214, 30)),
    "blue": ("蓝色", (40, 80, 235)),
}
DISTRACTOR_COLOUR = ("灰色", (200, 200, 200))
SHAPES: dict[str, str] = {"disc": "圆球", "square": "方块", "triangle": "三角", "cross": "十字", "ring": "圆环"}
MOTIONS: dict[str, tuple[str, ...]] = {
    "bounce": ("上下弹跳", "上下跳动", "一蹦一跳"),
    "slide": ("左右滑动", "左右来回移动", "从左到右来回滑"),
    "orbit": ("绕着圈转动", "转着圈移动", "沿圆圈运动"),
}
# The captions some shots show in their lower band (scene text; at most one shot per video).
SCENE_TEXTS: tuple[str, ...] = ("优酷出品", "精彩片段", "高清", "独家", "第一集", "热门", "现场", "原创")

# (scene, group) of each class: the 3 classes of a scene sit in groups 0, 1, 2 (orthogonal design).
_LAYOUT: dict[str, tuple[int, int]] = {
    "乐器演奏": (0, 0), "相声小品": (0, 1), "翻唱": (0, 2),
    "财经": (1, 0), "综艺": (1, 1), "电视剧周边（预告/杂谈）": (1, 2),
    "电影周边（预告/杂谈）": (2, 0), "电影剪辑": (2, 1), "电视剧剪辑": (2, 2),
    "篮球": (3, 0), "竞技体育": (3, 1), "足球": (3, 2),
    "美食制作": (4, 0), "美食测评": (4, 1), "养生保健": (4, 2),
    "家居装饰": (5, 0), "日常生活": (5, 1), "亲子育儿": (5, 2),
    "少儿玩具": (6, 0), "少儿动漫": (6, 1), "萌娃日常": (6, 2),
    "街舞": (7, 0), "少儿才艺": (7, 1), "广场舞": (7, 2),
    "美发美妆": (8, 0), "穿搭": (8, 1), "美容护肤": (8, 2),
    "学历教育": (9, 0), "传统文化": (9, 1), "科学科普": (9, 2),
    "职业职场": (10, 0), "科技": (10, 1), "医疗健康": (10, 2),
    "三农": (11, 0), "旅游": (11, 1), "纪录片": (11, 2),
    "汽车": (12, 0), "搞笑": (12, 1), "宠物": (12, 2),
    "游戏": (13, 0), "动漫": (13, 1), "MV": (13, 2),
    "房产装修": (14, 0), "生活百科": (14, 1), "健身": (14, 2),
}

# Who, doing what, with which keywords, to what end — one line per class, in the official class order.
_SEMANTICS: dict[str, tuple[str, str, tuple[str, ...], str, str]] = {
    "翻唱": ("一位歌手", "深情演唱", ("翻唱", "唱歌", "歌曲"), "展示自己的歌声", "歌曲翻唱"),
    "电视剧剪辑": ("剧中的演员", "表演剧情", ("电视剧", "剧集", "追剧"), "回顾精彩剧情", "电视剧片段"),
    "电视剧周边（预告/杂谈）": ("两位主持人", "聊剧情八卦", ("预告", "新剧", "花絮"), "介绍即将播出的新剧", "电视剧周边"),
    "财经": ("一位分析师", "讲解股市行情", ("财经", "股市", "理财"), "帮助观众理财", "财经资讯"),
    "美发美妆": ("一位化妆师", "化妆做造型", ("美妆", "化妆", "发型"), "教大家变美", "美发美妆"),
    "萌娃日常": ("一个小宝宝", "开心地玩耍", ("萌娃", "宝宝", "可爱"), "记录孩子的成长", "萌娃日常"),
    "传统文化": ("一位老师", "讲解传统习俗", ("传统文化", "非遗", "国学"), "传承传统文化", "传统文化"),
    "少儿动漫": ("卡通人物", "唱儿歌讲故事", ("动画片", "儿歌", "卡通"), "陪伴小朋友成长", "少儿动画"),
    "医疗健康": ("一位医生", "讲解健康知识", ("医生", "健康", "疾病"), "普及医学常识", "医疗健康"),
    "亲子育儿": ("一位妈妈", "陪孩子做游戏", ("育儿", "亲子", "妈妈"), "分享育儿经验", "亲子育儿"),
    "养生保健": ("一位中医", "介绍养生食谱", ("养生", "保健", "食疗"), "教大家保养身体", "养生保健"),
    "电影周边（预告/杂谈）": ("一位影评人", "解说电影幕后", ("影评", "电影预告", "幕后"), "介绍新上映的电影", "电影周边"),
    "篮球": ("篮球运动员", "运球投篮", ("篮球", "投篮", "扣篮"), "展示篮球技术", "篮球运动"),
    "日常生活": ("一家人", "吃饭聊天", ("生活", "家常", "日子"), "分享平凡的生活", "日常生活"),
    "搞笑": ("几个年轻人", "表演恶搞段子", ("段子", "恶搞", "搞笑视频"), "逗观众开心", "搞笑段子"),
    "少儿才艺": ("一个小朋友", "表演才艺", ("才艺", "小朋友表演", "比赛"), "展示孩子的才艺", "少儿才艺"),
    "街舞": ("一群舞者", "跳街舞", ("街舞", "舞蹈", "battle"), "展示街舞动作", "街舞表演"),
    "广场舞": ("一群阿姨", "跳广场舞", ("广场舞", "舞步", "健身舞"), "带大家一起锻炼", "广场舞"),
    "学历教育": ("一位老师", "讲解考试题目", ("考试", "复习", "高考"), "帮助学生提高成绩", "学历教育"),
    "房产装修": ("一位设计师", "介绍装修方案", ("装修", "房子", "户型"), "分享装修经验", "房产装修"),
    "美食制作": ("一位厨师", "切菜炒菜", ("美食", "做菜", "食谱"), "教大家做一道菜", "美食制作"),
    "竞技体育": ("运动员们", "激烈比赛", ("比赛", "冠军", "体育"), "展现竞技的魅力", "竞技体育"),
    "相声小品": ("两位演员", "说相声", ("相声", "小品", "包袱"), "给观众带来欢笑", "相声小品"),
    "MV": ("一位歌手", "在镜头前演唱", ("MV", "新歌", "音乐"), "宣传新歌", "音乐MV"),
    "穿搭": ("一位模特", "展示服装搭配", ("穿搭", "衣服", "搭配"), "分享穿搭灵感", "服装穿搭"),
    "科技": ("一位博主", "测评数码产品", ("手机", "数码", "科技"), "介绍最新的科技产品", "数码科技"),
    "健身": ("一位教练", "示范健身动作", ("健身", "减脂", "训练"), "带大家科学健身", "健身训练"),
    "家居装饰": ("一位博主", "布置房间", ("家居", "收纳", "软装"), "让家变得更好看", "家居装饰"),
    "纪录片": ("摄制组", "拍摄自然风光", ("纪录片", "自然", "探索"), "记录真实的世界", "纪录片"),
    "三农": ("一位农民", "在地里干农活", ("农村", "种地", "丰收"), "展示农村生活", "三农生活"),
    "职业职场": ("一位白领", "开会汇报工作", ("职场", "面试", "工作"), "分享职场经验", "职业职场"),
    "游戏": ("一位玩家", "打游戏闯关", ("游戏", "通关", "操作"), "展示游戏技巧", "电子游戏"),
    "乐器演奏": ("一位乐手", "弹奏乐器", ("钢琴", "吉他", "演奏"), "展示演奏技巧", "乐器演奏"),
    "综艺": ("嘉宾们", "玩综艺游戏", ("综艺", "节目", "嘉宾"), "带来综艺娱乐", "综艺节目"),
    "电影剪辑": ("电影主角", "上演经典桥段", ("电影", "大片", "经典片段"), "回顾电影高光片段", "电影片段"),
    "美容护肤": ("一位博主", "做皮肤护理", ("护肤", "面膜", "保湿"), "分享护肤心得", "美容护肤"),
    "宠物": ("一只小狗", "跟主人玩耍", ("宠物", "狗狗", "猫咪"), "展示宠物的可爱", "宠物日常"),
    "生活百科": ("一位博主", "讲解生活小窍门", ("小窍门", "妙招", "百科"), "解决生活中的小问题", "生活百科"),
    "旅游": ("一位游客", "游览风景名胜", ("旅游", "旅行", "景点"), "推荐旅游目的地", "旅游出行"),
    "足球": ("足球运动员", "带球射门", ("足球", "射门", "进球"), "展示足球技术", "足球运动"),
    "汽车": ("一位车主", "试驾新车", ("汽车", "试驾", "新车"), "评测汽车性能", "汽车评测"),
    "动漫": ("动漫角色", "展开冒险", ("动漫", "番剧", "二次元"), "讲述动漫故事", "动漫作品"),
    "少儿玩具": ("一个孩子", "拆玩具", ("玩具", "积木", "开箱"), "介绍好玩的玩具", "少儿玩具"),
    "科学科普": ("一位科普博主", "做科学实验", ("科普", "实验", "科学"), "普及科学知识", "科学科普"),
    "美食测评": ("一位美食博主", "品尝美食", ("探店", "测评", "好吃"), "推荐好吃的餐厅", "美食测评"),
}


def _object_looks() -> list[ObjectLook]:
    """A fixed bijection class → (colour, shape, motion): a permutation of the 45 triples with a constant seed,
    so that no attribute of the object correlates with scene or group."""
    triples = list(product(COLOURS, SHAPES, MOTIONS))
    order = np.random.default_rng(20230607).permutation(len(triples))
    return [ObjectLook(*triples[i]) for i in order]


def _build() -> tuple[ClassDesign, ...]:
    looks = _object_looks()
    out = []
    for i, name in enumerate(CLASS_NAMES):
        scene, group = _LAYOUT[name]
        subject, activity, keywords, intent, topic = _SEMANTICS[name]
        # The class name is a keyword too, unless it is a compound such as 电视剧周边（预告/杂谈）.
        names = () if "（" in name or name in keywords else (name,)
        out.append(ClassDesign(i, name, scene, group, looks[i], subject, activity, (*names, *keywords), intent, topic))
    return tuple(out)


CLASSES: tuple[ClassDesign, ...] = _build()
assert len({(c.scene, c.group) for c in CLASSES}) == NUM_CLASSES, "scene x group must name each class once"
assert len({c.look for c in CLASSES}) == NUM_CLASSES, "object looks must be unique"


def designed_ceilings(p_scene: float, p_object: float, p_group: float, p_keyword: float) -> dict[str, float]:
    """Bayes-optimal top-1 accuracy of models that see only some of the designed cues.

    With ``n_scene = 3`` classes per scene and ``n_group = 15`` classes per format group, and the posterior
    uniform over the classes consistent with the shown cues:

    * vision only: the object names the class; else the scene leaves 3; else 45.
    * language only: a keyword names the class; else the wording leaves 15; else 45.
    * vision + language: object or keyword name the class; else scene and wording together name it; else one
      of them leaves 3 or 15; else 45.
    * ``vision_language_easy``: vision + language without the object cue (what a model that never learned to
      recognise objects can reach).

    Returns:
        dict with keys vision, language, vision_language, vision_language_easy (fractions in [0, 1]).
    """
    n_scene, n_group = 3, 15
    scene_only = p_scene / n_scene + (1 - p_scene) / NUM_CLASSES
    group_only = p_group / n_group + (1 - p_group) / NUM_CLASSES
    easy_joint = (p_scene * p_group + p_scene * (1 - p_group) / n_scene + (1 - p_scene) * p_group / n_group
                  + (1 - p_scene) * (1 - p_group) / NUM_CLASSES)
    return {
        "vision": p_object + (1 - p_object) * scene_only,
        "language": p_keyword + (1 - p_keyword) * group_only,
        "vision_language": 1 - (1 - p_object) * (1 - p_keyword) * (1 - easy_joint),
        "vision_language_easy": 1 - (1 - p_keyword) * (1 - easy_joint),
    }

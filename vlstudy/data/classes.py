"""The 45 Youku-mPLUG video categories, in the index order of the official ``classname.json``.

Source: X-PLUG/Youku-mPLUG, ``classname.json`` (label name → index 0..44). Classification CSVs carry the
Chinese class *name* in their ``label`` column; models work with the index. Two names use full-width
parentheses and a slash, exactly as released: ``电视剧周边（预告/杂谈）`` and ``电影周边（预告/杂谈）``.

Super-categories: the paper groups the 45 categories into 20 super-categories, but the grouping is only
published as an image (``assets/statics.jpg``). ``SUPER_CATEGORIES`` below is this kit's own grouping into
20 super-categories, made from the class names; figures that use it say so.
"""

from __future__ import annotations

__all__ = ["CLASS_NAMES", "NUM_CLASSES", "SUPER_CATEGORIES", "class_index", "class_name", "super_category_of",
           "UnknownClassError"]

CLASS_NAMES: tuple[str, ...] = (
    "翻唱", "电视剧剪辑", "电视剧周边（预告/杂谈）", "财经", "美发美妆", "萌娃日常", "传统文化", "少儿动漫", "医疗健康",
    "亲子育儿", "养生保健", "电影周边（预告/杂谈）", "篮球", "日常生活", "搞笑", "少儿才艺", "街舞", "广场舞", "学历教育",
    "房产装修", "美食制作", "竞技体育", "相声小品", "MV", "穿搭", "科技", "健身", "家居装饰", "纪录片", "三农", "职业职场",
    "游戏", "乐器演奏", "综艺", "电影剪辑", "美容护肤", "宠物", "生活百科", "旅游", "足球", "汽车", "动漫", "少儿玩具",
    "科学科普", "美食测评",
)
NUM_CLASSES = len(CLASS_NAMES)
assert NUM_CLASSES == 45

_INDEX = {name: i for i, name in enumerate(CLASS_NAMES)}

# This kit's grouping (see the module docstring): super-category → member class names.
SUPER_CATEGORIES: dict[str, tuple[str, ...]] = {
    "音乐": ("翻唱", "MV", "乐器演奏"),
    "影视": ("电视剧剪辑", "电视剧周边（预告/杂谈）", "电影周边（预告/杂谈）", "电影剪辑", "纪录片"),
    "财经": ("财经",),
    "时尚": ("美发美妆", "穿搭", "美容护肤"),
    "母婴": ("萌娃日常", "亲子育儿"),
    "文化": ("传统文化", "相声小品"),
    "少儿": ("少儿动漫", "少儿才艺", "少儿玩具"),
    "健康": ("医疗健康", "养生保健"),
    "体育": ("篮球", "竞技体育", "足球"),
    "生活": ("日常生活", "生活百科", "宠物", "旅游"),
    "搞笑": ("搞笑",),
    "舞蹈": ("街舞", "广场舞"),
    "教育": ("学历教育", "职业职场"),
    "家居": ("房产装修", "家居装饰"),
    "美食": ("美食制作", "美食测评"),
    "科技": ("科技", "科学科普", "汽车"),
    "健身": ("健身",),
    "三农": ("三农",),
    "游戏动漫": ("游戏", "动漫"),
    "综艺": ("综艺",),
}
assert len(SUPER_CATEGORIES) == 20
assert sorted(n for names in SUPER_CATEGORIES.values() for n in names) == sorted(CLASS_NAMES)

_SUPER = {name: sup for sup, names in SUPER_CATEGORIES.items() for name in names}


class UnknownClassError(ValueError):
    """A label that is not one of the 45 official class names (or indices)."""


def class_index(name: str, where: str = "") -> int:
    """Index 0..44 of a class name; raises UnknownClassError naming `where` (file/row) and the value."""
    try:
        return _INDEX[name]
    except (KeyError, TypeError):
        prefix = f"{where}: " if where else ""
        raise UnknownClassError(f"{prefix}unknown class {name!r}: not one of the 45 Youku-mPLUG classes") from None


def class_name(index: int) -> str:
    """The class name of index 0..44."""
    if not 0 <= int(index) < NUM_CLASSES:
        raise UnknownClassError(f"class index {index} is outside 0..{NUM_CLASSES - 1}")
    return CLASS_NAMES[int(index)]


def super_category_of(name: str) -> str:
    """This kit's super-category of a class name."""
    class_index(name)
    return _SUPER[name]

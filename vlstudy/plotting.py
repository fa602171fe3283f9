"""Matplotlib set-up for readable Chinese labels, offline.

No CJK font ships with Debian's base image, so Chinese text renders as boxes. The pinned PyPI package
`mplfonts` carries Noto Sans CJK SC; `use_cjk_font` registers that file with matplotlib's font manager and
makes it the first sans-serif family (DejaVu Sans stays as the fallback for Latin glyphs and symbols).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
from matplotlib import font_manager

CJK_FONT_FILE = "NotoSansCJKsc-Regular.otf"

__all__ = ["cjk_font_path", "use_cjk_font", "CJK_FONT_FILE"]


def cjk_font_path() -> Path:
    """Path of the bundled Noto Sans CJK SC font (from the `mplfonts` package)."""
    import mplfonts

    path = Path(mplfonts.__file__).parent / "fonts" / CJK_FONT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"CJK font {path} is missing; reinstall the pinned 'mplfonts' package")
    return path


def use_cjk_font() -> str:
    """Register the CJK font and make it matplotlib's default sans-serif family; returns the family name."""
    path = cjk_font_path()
    font_manager.fontManager.addfont(str(path))
    family = font_manager.FontProperties(fname=str(path)).get_name()
    matplotlib.rcParams["font.family"] = "sans-serif"
    sans = [f for f in matplotlib.rcParams["font.sans-serif"] if f != family]
    matplotlib.rcParams["font.sans-serif"] = [family, *sans]
    matplotlib.rcParams["axes.unicode_minus"] = False
    return family

"""Chinese text in HTML pages that render on any machine: the CJK font embedded, subset to the page's characters.

A browser draws Chinese with a system CJK font; Debian's base image (and many servers) has none, so every
Chinese character of a report page became a box there. The figures already carry the bundled Noto Sans CJK SC
(`vlstudy.plotting`); this module gives the HTML pages the same font. The full font is 16 MB, so it is cut down
with fontTools' subsetter (the library matplotlib already depends on) to exactly the characters the page uses,
and inlined as a base64 ``@font-face`` (a page with a few hundred distinct characters carries ~100–300 kB).
"""

from __future__ import annotations

import base64
import html as html_lib
import io as std_io
import re

from vlstudy.plotting import cjk_font_path

__all__ = ["FONT_FAMILY", "cjk_characters", "embed_cjk_font", "font_face_css"]

FONT_FAMILY = "vlstudy CJK"
_CJK = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f]")


def cjk_characters(text: str) -> str:
    """The distinct CJK characters and full-width punctuation in `text` (HTML entities decoded), sorted."""
    return "".join(sorted(set(_CJK.findall(html_lib.unescape(text)))))


def font_face_css(characters: str) -> str:
    """An ``@font-face`` rule for `FONT_FAMILY` holding the bundled CJK font subset to `characters`."""
    from fontTools import subset

    options = subset.Options()
    options.flavor = None  # plain OpenType: WOFF2 would need the brotli package
    options.layout_features = ["*"]
    options.name_IDs = ["*"]
    font = subset.load_font(str(cjk_font_path()), options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=characters or "中")
    subsetter.subset(font)
    buffer = std_io.BytesIO()
    font.save(buffer)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (f"@font-face{{font-family:'{FONT_FAMILY}';src:url(data:font/otf;base64,{data}) format('opentype');}}\n"
            f"body,table,td,th,p,li,h1,h2,h3,h4,pre,code,figcaption,.jp-RenderedText,.jp-RenderedHTMLCommon"
            f"{{font-family:'{FONT_FAMILY}',system-ui,sans-serif}}")


def embed_cjk_font(page: str, css: str | None = None) -> str:
    """`page` (an HTML document) with the CJK font embedded in its ``<head>``: subset to the page's own characters,
    or `css` from `font_face_css` when several pages share one subset (subsetting costs ~1 s a time)."""
    characters = cjk_characters(page)
    if not characters:
        return page
    style = f"<style>{css or font_face_css(characters)}</style>"
    if "</head>" in page:
        return page.replace("</head>", style + "</head>", 1)
    return style + page

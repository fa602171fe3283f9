"""Chinese in the HTML pages renders with the embedded font in a real Chromium on a machine without a CJK font.

The proof: two different characters drawn in one span each. Without a font that has them, Chromium draws the
same empty box for both (the control page, which this machine needs to show: it has no system CJK font); with the
embedded subset font their pixels differ.
"""

from __future__ import annotations

import base64

import pytest

from vlstudy.fonts import embed_cjk_font

pytestmark = [pytest.mark.browser]

PAIR = ("中", "视")


def _page(embedded: bool) -> str:
    body = "".join(f"<p><span id=c{i} style='font-size:48px'>{ch}</span></p>" for i, ch in enumerate(PAIR))
    page = f"<!doctype html><html><head><meta charset=utf-8></head><body>{body}</body></html>"
    return embed_cjk_font(page) if embedded else page


def _glyph_pngs(driver, path) -> tuple[bytes, bytes]:
    from selenium.webdriver.common.by import By

    driver.get(path.as_uri())
    driver.execute_script("return document.fonts.ready")
    return tuple(base64.b64decode(driver.find_element(By.ID, f"c{i}").screenshot_as_base64) for i in range(2))


def test_embedded_font_draws_distinct_glyphs_where_the_system_draws_boxes(driver, tmp_path):
    plain, embedded = tmp_path / "plain.html", tmp_path / "embedded.html"
    plain.write_text(_page(False), encoding="utf-8")
    embedded.write_text(_page(True), encoding="utf-8")
    first, second = _glyph_pngs(driver, plain)
    if first != second:
        pytest.skip("this machine has a system CJK font: the control cannot show boxes")
    first, second = _glyph_pngs(driver, embedded)
    assert first != second
    assert driver.execute_script("return document.fonts.check('48px \"vlstudy CJK\"', '中视')")


def test_the_report_page_loads_the_embedded_face(driver, tmp_path):
    """The report's index page (the rating page: tests/test_humaneval_browser.py) loads the face in Chromium."""
    from vlstudy.report.index import build_index

    (tmp_path / "reports" / "runs").mkdir(parents=True)
    (tmp_path / "reports" / "runs" / "s.json").write_text('{"seconds": 1}')
    index = build_index(tmp_path, tmp_path / "reports" / "index.html", data_note="数据说明：中文", stage_ids=["s"])
    driver.get(index.as_uri())
    assert driver.execute_script("return document.fonts.ready.then(() => document.fonts.check('16px \"vlstudy CJK\"', "
                                 "'数据说明'))")

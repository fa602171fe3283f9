"""The rating page in a real headless Chromium: grade by keyboard, reload, export, import — one round trip."""

from __future__ import annotations

import time

import numpy as np
import pytest

from vlstudy.humaneval.protocol import EvalItem, ProtocolConfig, VideoItem, read_key, sample_items, write_package
from vlstudy.humaneval.ratings import read_ratings

pytestmark = [pytest.mark.browser]

RATER = "评分人 甲"
HOSTILE = "</script><b>bold?</b>"
# Per item: the key typed for each response in slot order (digits and letters mixed), and the slot picked best.
TYPED = [(("1", "b", "4"), "B"), (("c", "2", "a"), "B"), (("d", "3", "1"), "B")]
KEY_GRADE = {"1": "A", "2": "B", "3": "C", "4": "D", "a": "A", "b": "B", "c": "C", "d": "D"}


def _press(driver, key: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(key).perform()


def _cards(driver) -> list[tuple[str, str, bool]]:
    """(slot, grade, picked best) of every response card on screen."""
    return driver.execute_script(
        "return [...document.querySelectorAll('.response')].map("
        "c => [c.dataset.slot, c.dataset.grade, c.classList.contains('best')]);")


def test_rating_round_trip_keyboard_reload_export_import(driver, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    videos = [VideoItem(f"v{k}", np.full((2, 16, 16, 3), 40 * k, dtype=np.uint8)) for k in range(3)]
    items = sample_items([v.video_id for v in videos], ProtocolConfig(n_videos=2, n_instructions=3),
                         np.random.default_rng(0))
    responses = {m: [f"{m} 的回答 {k}" for k in range(len(items))] for m in ("m1", "m2")}
    responses["m3"] = [HOSTILE] * len(items)
    package_dir, key_path = tmp_path / "package", tmp_path / "key.json"
    write_package(package_dir, key_path, items, videos, responses, np.random.default_rng(1))

    driver.get((package_dir / "rating.html").as_uri())
    # Chinese renders with the font embedded in the page (this machine has no system CJK font)
    assert driver.execute_script("return document.fonts.ready.then(() => document.fonts.check("
                                 "'16px \"vlstudy CJK\"', '评分'))")
    assert not driver.find_element(By.ID, "item").is_displayed()
    driver.find_element(By.ID, "start").click()  # no name yet: refused
    assert "rater name is required" in driver.find_element(By.ID, "status").text
    assert not driver.find_element(By.ID, "item").is_displayed()
    driver.find_element(By.ID, "rater").send_keys(RATER, Keys.ENTER)
    assert driver.find_element(By.ID, "item").is_displayed()
    assert len(driver.find_elements(By.CSS_SELECTOR, "#frame-strip img")) == 2

    expected: dict[tuple[str, str], tuple[str, bool]] = {}
    for k, (keys, best) in enumerate(TYPED):
        assert driver.find_element(By.ID, "position").text.startswith(f"第 {k + 1} / 3 条")
        for key in keys:
            _press(driver, key)  # grades the focused response; focus moves on
        _press(driver, Keys.ARROW_UP)  # back to the second response
        _press(driver, "p")
        for slot, key in zip("ABC", keys):
            expected[items[k].item_id, slot] = (KEY_GRADE[key], slot == best)
        _press(driver, Keys.ARROW_RIGHT)
    assert driver.find_element(By.ID, "progress").text.startswith("已评 9 / 9 个回答")

    shown = driver.execute_script("return [...document.querySelectorAll('.response p')].map(p => p.textContent);")
    assert HOSTILE in shown and not driver.find_elements(By.CSS_SELECTOR, ".response b")

    driver.refresh()
    assert driver.find_element(By.ID, "rater").get_attribute("value") == RATER
    for k in range(len(items)):
        assert _cards(driver) == [[slot, *expected[items[k].item_id, slot]] for slot in "ABC"]
        _press(driver, Keys.ARROW_RIGHT)

    driver.find_element(By.ID, "export").click()
    csv = tmp_path / "downloads" / "ratings.csv"
    deadline = time.monotonic() + 10
    while not csv.is_file() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert csv.is_file(), "the page did not download ratings.csv"

    ratings = read_ratings(csv, package_dir, key_path)
    assert set(ratings["rater"]) == {RATER}
    got = {(r.item_id, r.slot): (r.grade, r.best) for r in ratings.itertuples()}
    assert got == expected
    assignment = read_key(key_path)["assignment"]
    assert all(r.model == assignment[r.item_id][r.slot] for r in ratings.itertuples())
    assert set(ratings.loc[ratings["model"] == "m3", "item_id"]) == {it.item_id for it in items}


def test_markup_in_instructions_and_answers_is_shown_as_text_and_never_run(driver, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    planted = ['<img src=x onerror="window.pwned = 1">', "<script>window.pwned = 2</script>",
               '</script><svg onload="window.pwned = 3">']
    items = [EvalItem("q001", "v0", "overall", f"{planted[0]}描述这个视频。{planted[1]}")]
    responses = {"m1": [planted[0]], "m2": [planted[1]], "m3": [planted[2]]}
    package_dir, key_path = tmp_path / "package", tmp_path / "key.json"
    write_package(package_dir, key_path, items, [VideoItem("v0", np.zeros((1, 8, 8, 3), np.uint8))], responses,
                  np.random.default_rng(0))

    driver.get((package_dir / "rating.html").as_uri())
    driver.find_element(By.ID, "rater").send_keys(RATER, Keys.ENTER)
    time.sleep(0.5)  # a broken image's onerror would have fired by now
    assert driver.find_element(By.ID, "instruction").text == items[0].instruction
    shown = driver.execute_script("return [...document.querySelectorAll('.response p')].map(p => p.textContent);")
    assert sorted(shown) == sorted(planted)
    assert driver.execute_script("return document.querySelectorAll('#instruction *, .response p *').length;") == 0
    assert driver.execute_script("return window.pwned === undefined;")

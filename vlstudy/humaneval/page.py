"""The offline rating page: one self-contained HTML file that a rater opens from disk (file://), no server.

Everything is inline: CSS, a small script, the package manifest (``items.json``) and the keyframes as base64
data URIs. The rater types a name (required before rating), then grades each anonymised response of each item
(Youku-mPLUG §5.4 scale A–D) and picks the best response of the item (Panda-70M's preference question).

Keys: ``1``–``4`` or ``a``–``d`` grade the focused response and move to the next one; ``p`` picks the focused
response as the best; ``↑``/``↓`` (or Tab) move between responses; ``←``/``→`` go to the previous/next item.

Ratings live in the browser's ``localStorage`` under ``vlstudy-rating:<package_id>:rater:<name>``, so a reload
(or a crash) loses nothing and the last rater is signed in again. "导出" downloads ``ratings.csv`` with the
columns of :data:`RATINGS_COLUMNS`: one row per response that was graded or picked best; ``best`` is 1 or 0 and
``timestamp`` is the ISO-8601 time of the row's last change. Instructions and model answers are inserted with
``textContent`` only, and every ``<`` in the inlined JSON is escaped, so neither can inject markup or script. Hand-written because no library renders a keyboard rating form offline in
one file; the script is kept to plain DOM calls.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Mapping

__all__ = ["RATINGS_COLUMNS", "render_page"]

RATINGS_COLUMNS: tuple[str, ...] = ("rater", "item_id", "slot", "grade", "best", "timestamp")
"""The columns of the exported ``ratings.csv``, in order."""

_STYLE = """
body { font-family: "Noto Sans CJK SC", "Microsoft YaHei", sans-serif; margin: 0 auto; max-width: 60rem;
       padding: 1rem; color: #222; }
header { display: flex; gap: 1rem; align-items: center; flex-wrap: wrap; }
#status { color: #b00; }
#frame-strip img { height: 8rem; margin-right: .3rem; image-rendering: pixelated; }
#instruction { font-size: 1.2rem; font-weight: bold; }
.response { border: 2px solid #ccc; border-radius: .4rem; padding: .5rem 1rem; margin: .6rem 0; }
.response:focus { outline: none; border-color: #1a73e8; }
.response.best { background: #fff8e1; }
.grades button.chosen { background: #1a73e8; color: white; }
dl.legend dt { font-weight: bold; float: left; width: 1.5rem; }
"""

_SCRIPT = r"""
"use strict";
const PKG = JSON.parse(document.getElementById("package").textContent);
const FRAMES = JSON.parse(document.getElementById("frame-data").textContent);
const COLUMNS = JSON.parse(document.getElementById("columns").textContent);
const GRADES = Object.keys(PKG.grades);
const KEY_GRADES = {"1": "A", "2": "B", "3": "C", "4": "D", "a": "A", "b": "B", "c": "C", "d": "D"};
const PREFIX = "vlstudy-rating:" + PKG.package_id + ":";
const $ = (id) => document.getElementById(id);
const el = (tag, props) => Object.assign(document.createElement(tag), props);
let rater = null;                      // who is rating; nothing can be graded before a name is given
let state = {grades: {}, best: {}};    // grades["q001|A"] = {grade, time}; best["q001"] = {slot, time}
let index = 0;                         // the item on screen

function save() { localStorage.setItem(PREFIX + "rater:" + rater, JSON.stringify(state)); }

function start(name) {
  name = name.trim();
  if (!name) { $("status").textContent = "请先填写评分人 (a rater name is required)"; $("rater").focus(); return; }
  rater = name;
  state = JSON.parse(localStorage.getItem(PREFIX + "rater:" + rater) || '{"grades": {}, "best": {}}');
  localStorage.setItem(PREFIX + "last-rater", rater);
  $("rater").value = rater;
  $("status").textContent = "";
  $("export").disabled = false;
  $("item").hidden = false;
  show(0);
}

function show(i) {
  index = Math.max(0, Math.min(PKG.items.length - 1, i));
  const item = PKG.items[index];
  $("position").textContent = `第 ${index + 1} / ${PKG.items.length} 条 · ${item.item_id}`;
  $("instruction").textContent = item.instruction;
  $("frame-strip").replaceChildren(...item.frames.map((f) => el("img", {src: FRAMES[f], alt: f})));
  $("responses").replaceChildren(...Object.entries(item.responses).map(([slot, text]) => card(slot, text)));
  $("best-options").replaceChildren(...Object.keys(item.responses).map((slot) => {
    const label = el("label", {});
    const radio = el("input", {type: "radio", name: "best", value: slot, onchange: () => pickBest(slot)});
    label.append(radio, ` 回答 ${slot} `);
    return label;
  }));
  refresh();
  const cards = [...document.querySelectorAll(".response")];
  (cards.find((c) => !c.dataset.grade) || cards[0]).focus();
}

function card(slot, text) {
  const div = el("div", {className: "response", tabIndex: 0});
  div.dataset.slot = slot;
  const buttons = el("div", {className: "grades"});
  GRADES.forEach((g, k) => {
    const b = el("button", {textContent: `${k + 1} · ${g}`, title: PKG.grades[g], onclick: () => grade(slot, g)});
    b.dataset.grade = g;
    buttons.append(b);
  });
  div.append(el("h3", {textContent: "回答 " + slot}), el("p", {textContent: text}), buttons);
  return div;
}

function refresh() {
  const id = PKG.items[index].item_id;
  for (const div of document.querySelectorAll(".response")) {
    const rec = state.grades[id + "|" + div.dataset.slot];
    div.dataset.grade = rec ? rec.grade : "";
    div.classList.toggle("best", state.best[id]?.slot === div.dataset.slot);
    for (const b of div.querySelectorAll("button")) b.classList.toggle("chosen", div.dataset.grade === b.dataset.grade);
  }
  for (const radio of document.querySelectorAll("#best-options input")) {
    radio.checked = state.best[id]?.slot === radio.value;
  }
  const total = PKG.items.reduce((n, item) => n + Object.keys(item.responses).length, 0);
  $("progress").textContent = `已评 ${Object.keys(state.grades).length} / ${total} 个回答，` +
    `已选最佳 ${Object.keys(state.best).length} / ${PKG.items.length} 条`;
}

function grade(slot, g) {
  state.grades[PKG.items[index].item_id + "|" + slot] = {grade: g, time: new Date().toISOString()};
  save();
  refresh();
}

function pickBest(slot) {
  state.best[PKG.items[index].item_id] = {slot: slot, time: new Date().toISOString()};
  save();
  refresh();
}

function moveFocus(card, step) {
  const cards = [...document.querySelectorAll(".response")];
  const next = cards[cards.indexOf(card) + step];
  if (next) next.focus();
}

document.addEventListener("keydown", (e) => {
  if (!rater || e.target instanceof HTMLInputElement || e.ctrlKey || e.metaKey || e.altKey) return;
  const card = document.activeElement && document.activeElement.closest(".response");
  const key = e.key.toLowerCase();
  if (card && key in KEY_GRADES) { grade(card.dataset.slot, KEY_GRADES[key]); moveFocus(card, 1); }
  else if (card && key === "p") pickBest(card.dataset.slot);
  else if (card && e.key === "ArrowDown") moveFocus(card, 1);
  else if (card && e.key === "ArrowUp") moveFocus(card, -1);
  else if (e.key === "ArrowRight") show(index + 1);
  else if (e.key === "ArrowLeft") show(index - 1);
  else return;
  e.preventDefault();
});

function csvField(value) { return '"' + String(value).replaceAll('"', '""') + '"'; }

function exportCsv() {
  const rows = [COLUMNS];
  for (const item of PKG.items) {
    for (const slot of Object.keys(item.responses)) {
      const rec = state.grades[item.item_id + "|" + slot];
      const best = state.best[item.item_id]?.slot === slot ? state.best[item.item_id] : null;
      if (!rec && !best) continue;
      const time = [rec?.time, best?.time].filter(Boolean).sort().pop();
      rows.push([rater, item.item_id, slot, rec ? rec.grade : "", best ? 1 : 0, time]);
    }
  }
  const csv = "\ufeff" + rows.map((r) => r.map(csvField).join(",")).join("\r\n") + "\r\n";
  const url = URL.createObjectURL(new Blob([csv], {type: "text/csv;charset=utf-8"}));
  const link = el("a", {href: url, download: "ratings.csv"});
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

$("start").onclick = () => start($("rater").value);
$("rater").onkeydown = (e) => { if (e.key === "Enter") start($("rater").value); };
$("prev").onclick = () => show(index - 1);
$("next").onclick = () => show(index + 1);
$("export").onclick = exportCsv;
$("legend").replaceChildren(...GRADES.flatMap((g) => [el("dt", {textContent: g}),
                                                     el("dd", {textContent: PKG.grades[g]})]));
const lastRater = localStorage.getItem(PREFIX + "last-rater");
if (lastRater) start(lastRater);
"""

_TEMPLATE = """<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<title>视频指令评测 · __PACKAGE_ID__</title>
<style>__STYLE__</style>
</head>
<body>
<header>
  <label>评分人 (rater) <input id="rater" autocomplete="off"></label>
  <button id="start">开始</button>
  <button id="export" disabled>导出 ratings.csv</button>
  <span id="progress"></span>
  <span id="status"></span>
</header>
<details open>
  <summary>评分标准与快捷键</summary>
  <dl class="legend" id="legend"></dl>
  <p>1–4 或 a–d：给当前回答打分并跳到下一个；p：选为最佳回答；↑/↓ 或 Tab：切换回答；←/→：上一条/下一条。</p>
</details>
<main id="item" hidden>
  <h2 id="position"></h2>
  <div id="frame-strip"></div>
  <p id="instruction"></p>
  <div id="responses"></div>
  <fieldset><legend>哪个回答最好？</legend><span id="best-options"></span></fieldset>
  <nav><button id="prev">← 上一条</button> <button id="next">下一条 →</button></nav>
</main>
<script type="application/json" id="package">__PACKAGE__</script>
<script type="application/json" id="frame-data">__FRAMES__</script>
<script type="application/json" id="columns">__COLUMNS__</script>
<script>__SCRIPT__</script>
</body>
</html>
"""


def _json_for_script(data) -> str:
    """JSON safe inside a ``<script>`` element: every ``<`` escaped, so no string can close the element."""
    return json.dumps(data, ensure_ascii=False).replace("<", "\\u003c")


def render_page(manifest: dict, frames: Mapping[str, bytes]) -> str:
    """The rating page for a package.

    Args:
        manifest: the content of ``items.json`` (:func:`vlstudy.humaneval.protocol.build_manifest`).
        frames: JPEG bytes of every frame file the manifest names, by file name.

    Returns:
        The HTML text; it loads nothing from the network or the disk.
    """
    missing = [f for item in manifest["items"] for f in item["frames"] if f not in frames]
    if missing:
        raise KeyError(f"frame {missing[0]!r} named in the manifest was not given")
    uris = {name: "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii") for name, data in frames.items()}
    parts = {
        "__PACKAGE_ID__": html.escape(manifest["package_id"]),
        "__STYLE__": _STYLE,
        "__PACKAGE__": _json_for_script(manifest),
        "__FRAMES__": _json_for_script(uris),
        "__COLUMNS__": _json_for_script(list(RATINGS_COLUMNS)),
        "__SCRIPT__": _SCRIPT,
    }
    # One pass, so text inserted for one placeholder (a response may contain anything) is never rescanned.
    return re.sub("|".join(parts), lambda m: parts[m.group(0)], _TEMPLATE)

"""``xfr report`` in a real browser (headless Chromium, Playwright): the report of real LFW
pairs explained with the bundled model loads every image, sorts and filters its rows, its
heatmap slider changes the overlay, no console error, screenshots are not blank; the evaluation
and sanity pages of the committed LFW runs too."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from browser_support import Watched, save_docs_screenshot

from xfr.cli import main
from xfr.site.report import collect

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.lfw


@pytest.fixture(scope="module")
def report(explained_folder: Path) -> Path:
    assert main(["report", str(explained_folder)]) == 0
    return explained_folder / "report" / "index.html"


def visible(w: Watched) -> list[dict[str, str]]:
    return w.page.eval_on_selector_all(
        "#pairs tbody tr", "rows => rows.filter(r => !r.hidden).map(r => ({stem: "
        "r.querySelector('.name').textContent.trim().split(/\\s/)[0], margin: r.dataset.margin,"
        " decision: r.dataset.decision, correct: r.dataset.correct, status: r.dataset.status}))")


def test_index_loads_sorts_and_filters(report: Path, watched: Watched,
                                       explained_folder: Path) -> None:
    w = watched
    w.page.goto(report.as_uri())
    assert w.assert_images_load() == 6  # two thumbnails per explained pair
    rows = collect(explained_folder)
    assert [r["stem"] for r in visible(w)] == [r.stem for r in rows]
    assert len(rows) == 4 and w.page.text_content("#shown") == "4 of 4 shown"
    expected = {
        "all": len(rows),
        "wrong": sum(r.correct is False for r in rows),
        "right": sum(r.correct is True for r in rows),
        "positive": sum(r.decision == "positive" for r in rows),
        "negative": sum(r.decision == "negative" for r in rows),
        "failed": 1,
    }
    for option, count in expected.items():
        w.page.select_option("#filter", option)
        shown = visible(w)
        assert len(shown) == count, option
        assert w.page.text_content("#shown") == f"{count} of 4 shown"
        if option in ("positive", "negative"):
            assert {r["decision"] for r in shown} <= {option}
        if option == "failed":
            assert shown[0]["status"] == "failed"
    w.page.select_option("#filter", "all")
    w.page.select_option("#sort", "margin-asc")
    ascending = [r["stem"] for r in visible(w)]
    margins = {r.stem: r.margin for r in rows}
    assert ascending[:3] == sorted((s for s in margins if margins[s] is not None),
                                   key=lambda s: margins[s])
    assert ascending[-1] == "pair_00003"  # the failed pair has no margin: last
    w.page.select_option("#sort", "margin-desc")
    assert [r["stem"] for r in visible(w)][:3] == ascending[:3][::-1]
    w.page.click("th button[data-sort=order]")
    assert [r["stem"] for r in visible(w)] == [r.stem for r in rows]
    w.page.fill("#search", "pair_00001")
    assert [r["stem"] for r in visible(w)] == ["pair_00001"]
    w.page.fill("#search", "")
    img = w.assert_not_blank()
    save_docs_screenshot(img, "report-index.png")
    w.assert_no_errors()


def test_pair_page_shows_everything_and_the_slider_changes_the_overlay(
        report: Path, watched: Watched) -> None:
    w = watched
    w.page.goto(report.as_uri())
    w.page.click("#pairs tbody tr:first-child .name a")
    w.page.wait_for_url("**/pair-pair_00000.html")
    n = w.assert_images_load()
    # 2 photos + 2 faces + 2 attention + 2 Otsu + 2x(luminance, heat) + colour bar + 3 per
    # candidate (mask, masked probe, masked gallery)
    candidates = w.page.locator("#candidates tbody tr").count()
    assert candidates >= 2
    assert n == 13 + 3 * candidates
    assert w.page.locator("img.photo").count() == 2  # the LFW photos with their face boxes
    assert w.page.text_content("#verdict") in ("same person", "different person")
    heat = "document.querySelector('.overlay img.heat')"
    assert w.page.evaluate(f"getComputedStyle({heat}).opacity") == "0.5"
    w.page.locator("#opacity").fill("90")
    assert w.page.evaluate(f"getComputedStyle({heat}).opacity") == "0.9"
    assert w.page.text_content("#opacity-value") == "90 %"
    w.page.locator("#opacity").fill("0")
    assert w.page.evaluate(f"getComputedStyle({heat}).opacity") == "0"
    w.page.locator("#opacity").fill("50")
    img = w.assert_not_blank(full_page=True)
    save_docs_screenshot(img, "report-pair.png")
    assert w.page.locator("#prev").count() == 0
    w.page.click("#next")
    w.page.wait_for_url("**/pair-pair_00001.html")
    w.assert_images_load()
    w.page.click("#prev")
    w.page.wait_for_url("**/pair-pair_00000.html")
    w.page.click("#home")
    w.page.wait_for_url("**/index.html")
    w.assert_no_errors()


@pytest.mark.parametrize("run", ["default-60", "sanity"])
def test_evaluation_and_sanity_pages(run: str, tmp_path: Path, watched: Watched) -> None:
    folder = tmp_path / run
    shutil.copytree(ROOT / "reports" / "lfw" / run, folder)
    assert main(["report", str(folder)]) == 0
    page = folder / "report" / ("evaluation.html" if run == "default-60" else "sanity.html")
    w = watched
    w.page.goto(page.as_uri())
    figures = sorted(p.name for p in folder.glob("*.png"))
    assert w.assert_images_load() == len(figures) >= 1
    if run == "default-60":
        assert "Table 1" in w.page.text_content("#table1")
        assert w.page.locator("#table1 table tbody tr").count() >= 5
        assert w.page.locator("#deletion table").count() >= 4
    else:
        assert "Model-randomisation" in w.page.text_content("#sanity")
    w.assert_not_blank()
    w.page.goto((folder / "report" / "index.html").as_uri())
    w.assert_no_errors()

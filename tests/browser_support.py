"""What the browser tests share: Debian's Chromium driven by Playwright (no browser download),
a page that records console errors, checks that every image loaded and that a screenshot is not
blank, real LFW pairs explained with the bundled model, and screenshots for the README.

Without Chromium or Playwright the browser tests skip with the reason, except in CI (the ``CI``
environment variable set), where they fail: ``.ci/run`` installs Chromium."""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

#: Where the README's screenshots go when ``XFR_SCREENSHOTS=1`` (small PNGs).
DOCS_IMG = Path(__file__).resolve().parent.parent / "docs" / "img"


def unavailable(reason: str) -> None:
    """Skip, or fail in CI, when the browser cannot run."""
    if os.environ.get("CI"):
        pytest.fail(f"browser tests cannot run in CI: {reason}")
    pytest.skip(reason)


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    unavailable("Chromium not found (apt-get install -y chromium)")
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's), launched once per test session."""
    path = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install '.[test]')")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield b
        b.close()


class Watched:
    """A page and the errors its console and scripts reported."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(f"console: {m.text}")
                if m.type == "error" else None)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.on("requestfailed", lambda r: self.errors.append(f"request failed: {r.url}"))

    def images(self) -> list[dict[str, Any]]:
        """Every ``<img>`` of the page with its ``naturalWidth`` once loading finished."""
        self.page.wait_for_load_state("load")
        return self.page.eval_on_selector_all(
            "img", "els => els.map(e => ({src: e.getAttribute('src'), complete: e.complete, "
                   "width: e.naturalWidth}))")

    def assert_images_load(self) -> int:
        imgs = self.images()
        broken = [i["src"] for i in imgs if not i["complete"] or i["width"] <= 0]
        assert not broken, f"images that did not load: {broken}"
        return len(imgs)

    def assert_not_blank(self, path: Path | None = None, full_page: bool = False) -> Any:
        """A screenshot with real content (many colours, not one flat colour)."""
        from PIL import Image

        data = self.page.screenshot(full_page=full_page)
        if path is not None:
            path.write_bytes(data)
        img = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        assert img.std() > 20, "the screenshot is (almost) one colour"
        assert len(np.unique(img.reshape(-1, 3), axis=0)) > 200, "too few colours: blank?"
        return img

    def assert_no_errors(self) -> None:
        assert self.errors == [], self.errors


@pytest.fixture()
def watched(browser: Any) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield Watched(page)
    context.close()


def save_docs_screenshot(img: np.ndarray, name: str, width: int = 760) -> None:
    """With ``XFR_SCREENSHOTS=1``: ``docs/img/<name>`` scaled to ``width`` and reduced to a
    palette, a small PNG for the README."""
    if os.environ.get("XFR_SCREENSHOTS") != "1":
        return
    from PIL import Image

    im = Image.fromarray(img)
    im = im.resize((width, round(im.height * width / im.width)), Image.Resampling.LANCZOS)
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    im.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(DOCS_IMG / name,
                                                                  optimize=True)


def lfw_pairs(lfw_root: Path, genuine: int = 2, impostor: int = 1) -> list[Any]:
    """The first genuine and impostor pairs of LFW fold 10 (people the model never saw)."""
    from xfr.data.lfw import read_pairs

    pairs = [p for p in read_pairs(lfw_root / "pairs.txt", lfw_root) if p.fold == 10]
    return ([p for p in pairs if p.same][:genuine]
            + [p for p in pairs if not p.same][:impostor])


def explain_into(folder: Path, pairs: list[Any], failed: bool = False) -> list[dict[str, str]]:
    """Explain ``pairs`` with the bundled model into ``folder`` through ``xfr explain --pairs``
    (its ``pair_NNNNN`` files and ``summary.csv``; no HTML report yet), with one more pair
    whose probe is a plain grey picture when ``failed`` (no face: a failed row); returns the
    summary rows."""
    from PIL import Image

    from xfr.batch import BatchSettings, run_batch
    from xfr.explanation import Explanation

    listing = folder.parent / f"{folder.name}-pairs.csv"
    lines = ["probe,gallery,same"]
    lines += [f"{p.probe},{p.gallery},{int(p.same)}" for p in pairs]
    if failed:
        grey = folder.parent / f"{folder.name}-grey.jpg"
        Image.new("RGB", (250, 250), (128, 128, 128)).save(grey)
        lines.append(f"{grey},{pairs[0].gallery},1")
    listing.write_text("\n".join(lines) + "\n", encoding="utf-8")
    # the paper's method: its pages show every stage (Otsu masks, candidates, selection)
    result = run_batch(BatchSettings(listing, folder, method="paper", pairs_per_batch=4,
                                     quiet=True))
    assert result.failed == int(failed), result
    with open(result.summary, newline="", encoding="utf-8") as f:
        rows = [dict(r) for r in csv.DictReader(f)]
    for row in rows:
        if row["status"] == "ok":  # the summary and the saved explanation agree
            assert Explanation.load(folder / f"{row['stem']}.json").decision == row["decision"]
    return rows


@pytest.fixture(scope="session")
def explained_folder(tmp_path_factory: pytest.TempPathFactory, lfw_root: Path,
                     default_verifier: Any) -> Path:
    """Three real LFW pairs of fold 10 (two genuine, one impostor) and one photo without a
    face, explained with the bundled model by ``xfr explain --pairs``'s batch run: its files
    and ``summary.csv`` (the faceless pair failed); no report yet."""
    folder = tmp_path_factory.mktemp("explained")
    pairs = lfw_pairs(lfw_root)
    explain_into(folder, pairs, failed=True)
    return folder

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
#: wt20's ``xfr explain --pairs`` summary columns (README, "Many pairs").
SUMMARY_COLUMNS = ("index", "stem", "probe", "gallery", "status", "decision", "distance",
                   "threshold", "margin", "strategy", "label", "correct", "seconds", "error")


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


def explain_into(folder: Path, pairs: list[Any], failed: tuple[str, str] | None = None
                 ) -> list[dict[str, str]]:
    """Explain ``pairs`` with the bundled model into ``folder`` (``pair_00000``...) and write a
    ``summary.csv`` in ``xfr explain --pairs``'s format, with one failed pair when ``failed``
    (its files) is given; returns the summary rows."""
    import xfr

    explanations = xfr.explain_pairs([(str(p.probe), str(p.gallery)) for p in pairs])
    rows = []
    for i, (p, e) in enumerate(zip(pairs, explanations, strict=True)):
        stem = f"pair_{i:05d}"
        e.save(folder, stem)
        rows.append({"index": str(i), "stem": stem, "probe": str(p.probe),
                     "gallery": str(p.gallery), "status": "ok", "decision": e.decision,
                     "distance": repr(e.distance), "threshold": repr(e.threshold),
                     "margin": repr(abs(e.distance - e.threshold)), "strategy": e.strategy or "",
                     "label": "same" if p.same else "different",
                     "correct": str((e.decision == "positive") == p.same).lower(),
                     "seconds": "0.5", "error": ""})
    if failed is not None:
        i = len(rows)
        rows.append({**{c: "" for c in SUMMARY_COLUMNS}, "index": str(i),
                     "stem": f"pair_{i:05d}", "probe": failed[0], "gallery": failed[1],
                     "status": "failed", "label": "same", "error": "no face found in the probe"})
    with open(folder / "summary.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(SUMMARY_COLUMNS), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return rows


@pytest.fixture(scope="session")
def explained_folder(tmp_path_factory: pytest.TempPathFactory, lfw_root: Path,
                     default_verifier: Any) -> Path:
    """Three real LFW pairs of fold 10 (two genuine, one impostor) explained with the bundled
    model, saved with a ``summary.csv`` that also lists one failed pair; no report yet."""
    folder = tmp_path_factory.mktemp("explained")
    pairs = lfw_pairs(lfw_root)
    explain_into(folder, pairs, failed=(str(pairs[0].probe), str(folder / "missing.jpg")))
    return folder

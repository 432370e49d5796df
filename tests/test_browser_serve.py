"""``xfr serve`` for real: the command started on a free loopback port (a subprocess, the
bundled model), driven by headless Chromium: upload two LFW photos through the form and read the
decision (the same as ``xfr explain`` on the same files); a text file, a photo without a face
and an oversized upload give one clear message on the page; concurrent requests agree."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from browser_support import Watched, lfw_pairs, save_docs_screenshot

from xfr.cli import main

pytestmark = pytest.mark.lfw


@pytest.fixture(scope="module")
def photos(lfw_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A genuine LFW pair of fold 10, a text file and a photo without a face."""
    from PIL import Image

    pair = lfw_pairs(lfw_root, genuine=1, impostor=0)[0]
    folder = tmp_path_factory.mktemp("photos")
    text = folder / "notes.txt"
    text.write_text("this is not a photo\n")
    blank = folder / "wall.png"
    rng = np.random.default_rng(0)
    Image.fromarray((120 + 10 * rng.random((240, 240, 3))).astype(np.uint8)).save(blank)
    return {"probe": pair.probe, "gallery": pair.gallery, "text": text, "blank": blank,
            "folder": pair.probe.parent}


@pytest.fixture(scope="module")
def server(photos: dict[str, Path]) -> Iterator[str]:
    """``xfr serve --port 0`` (a free loopback port); its URL; stopped afterwards."""
    # run from the photos' folder: ``python -m`` puts the working folder first on sys.path, and
    # from a source checkout that would import its xfr/ (without compiled kernels) instead of
    # the installed package
    proc = subprocess.Popen(
        [sys.executable, "-m", "xfr", "serve", "--port", "0", "--photos",
         str(photos["folder"]), "--max-upload-mb", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=photos["text"].parent)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed once the model is loaded and the port bound
        m = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        if not m:
            proc.kill()
            raise AssertionError(f"xfr serve did not start: {line!r} {proc.stderr.read()!r}")
        url = m.group(1)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "health", timeout=5) as r:
                    assert json.load(r)["status"] == "ok"
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode in (0, -15), proc.stderr.read() if proc.stderr else ""


def submit(w: Watched, url: str, probe: Path | dict, gallery: Path | dict,
           **choices: str) -> None:
    w.page.goto(url)
    w.page.set_input_files("#probe", probe)
    w.page.set_input_files("#gallery", gallery)
    for key, value in choices.items():
        w.page.select_option(f"#{key}", value)
    with w.page.expect_navigation(timeout=90_000):
        w.page.click("#submit")


def cli_result(photos: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
               *extra: str) -> dict:
    assert main(["explain", str(photos["probe"]), str(photos["gallery"]), "--json", "-o",
                 str(tmp_path / "cli"), *extra]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_upload_two_photos_and_read_the_decision(server: str, photos: dict[str, Path],
                                                 watched: Watched, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    w = watched
    submit(w, server, photos["probe"], photos["gallery"], method="paper", selector="fixed:oim",
           generator="rollout")
    assert re.search(r"/r/[^/]+/$", w.page.url), w.page.url
    verdict = w.page.text_content("#verdict")
    distance = float(w.page.text_content("#distance"))
    expected = cli_result(photos, tmp_path, capsys, "--method", "paper", "--selector",
                          "fixed:oim", "--generator", "rollout")
    assert verdict == ("same person" if expected["decision"] == "positive"
                       else "different person")
    assert distance == pytest.approx(expected["distance"], abs=1e-4)
    assert w.page.text_content("#strategy") == expected["strategy"] == "oim"
    w.assert_images_load()
    assert w.page.locator("img.photo").count() == 2  # the uploads, with their face boxes
    w.page.locator("#opacity").fill("80")
    assert w.page.evaluate(
        "getComputedStyle(document.querySelector('.overlay img.heat')).opacity") == "0.8"
    w.assert_not_blank()
    w.page.click("#home")
    w.page.wait_for_url(server)
    save_docs_screenshot(w.assert_not_blank(), "serve-form.png")
    w.assert_no_errors()


def test_bad_uploads_give_one_clear_message(server: str, photos: dict[str, Path],
                                            watched: Watched) -> None:
    w = watched
    cases = [
        (photos["text"], "is not an image that can be read"),
        (photos["blank"], "no face found"),
        ({"name": "huge.jpg", "mimeType": "image/jpeg", "buffer": b"\xff" * (3 * 2**20)},
         "the limit is 2.0 MB"),
    ]
    for probe, message in cases:
        submit(w, server, probe, photos["gallery"])
        error = w.page.text_content("#error")
        assert error is not None and message in error, (message, error)
        assert "Traceback" not in w.page.content()
        assert w.page.locator("#explain-form").count() == 1  # the form again, to retry
    # nothing chosen at all
    w.page.goto(server)
    with w.page.expect_navigation():
        w.page.click("#submit")
    assert "choose a probe photo" in (w.page.text_content("#error") or "")
    w.errors = [e for e in w.errors if "status of 4" not in e]  # the 4xx answers themselves
    w.assert_no_errors()


def _multipart(fields: dict[str, str], files: dict[str, Path]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for k, v in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n'
                     f"{v}\r\n".encode())
    for k, path in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; '
                     f'filename="{path.name}"\r\nContent-Type: image/jpeg\r\n\r\n'.encode()
                     + path.read_bytes() + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def test_concurrent_requests_agree(server: str, photos: dict[str, Path]) -> None:
    """Four requests at once (uploads and a pick from --photos) share the model: same
    distance for all."""
    body, ctype = _multipart({}, {"probe": photos["probe"], "gallery": photos["gallery"]})
    pick = "&".join(f"{k}={urllib.request.quote(v)}" for k, v in (
        ("probe_pick", photos["probe"].name), ("gallery_pick", photos["gallery"].name)))
    results: list[str] = []

    def one(i: int) -> None:
        if i % 2:
            req = urllib.request.Request(server + "explain", data=pick.encode(), headers={
                "Content-Type": "application/x-www-form-urlencoded"})
        else:
            req = urllib.request.Request(server + "explain", data=body,
                                         headers={"Content-Type": ctype})
        with urllib.request.urlopen(req, timeout=120) as r:  # follows the 303 to the page
            html = r.read().decode()
        results.append(re.search(r'id="distance">([^<]+)<', html).group(1))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and len(set(results)) == 1, results

"""The web app of ``xfr serve``: upload (or pick) two photos, choose the verifier, method,
attention generator and selector, and see the pair's page of the HTML report.

A Starlette application (the optional extra ``xfr[web]``: starlette, uvicorn,
python-multipart). Every request runs the same :func:`xfr.explain` as ``xfr explain PROBE
GALLERY`` on the same files, so it gives the same numbers; the loaded models are shared
read-only by every request, one model pass at a time (a lock). Mistakes (a file that is not an
image, an upload over the size limit, a photo without a face, an unknown option) come back as
the form with one clear message, never a stack trace.

Routes: ``GET /`` the form; ``POST /explain`` runs it and redirects (303) to
``/r/<id>/``, the result page; ``GET /health``; static ``/assets``.
"""

from __future__ import annotations

import io
import re
import secrets
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xfr.defaults import DEFAULT_METHOD
from xfr.errors import MissingDependencyError, UserError

#: Image files offered from ``--photos`` (by suffix, case-insensitive).
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
#: Most photos listed from ``--photos``.
MAX_PHOTOS = 5000
#: The upload limit per photo by default (bytes).
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
#: The selector offered first (the paper's SM+/SM- selection).
DEFAULT_SELECTOR = "metric"
#: The generator offered first: the chosen method's own (no ``generator`` option passed).
DEFAULT_GENERATOR = "default"


def require_web() -> None:
    """Raise :class:`~xfr.errors.MissingDependencyError` when the web extra is missing."""
    import importlib.util

    missing = [m for m in ("starlette", "uvicorn", "multipart", "jinja2")
               if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(
            f"xfr serve needs {', '.join(missing)}: pip install 'xfr[web]'")


def list_photos(folder: Path | None) -> list[str]:
    """The image files under ``folder`` (relative POSIX paths, sorted), at most
    :data:`MAX_PHOTOS`."""
    if folder is None:
        return []
    found = []
    for p in sorted(folder.rglob("*")):
        if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file():
            found.append(p.relative_to(folder).as_posix())
            if len(found) >= MAX_PHOTOS:
                break
    return found


@dataclass
class Choices:
    """What the form offers; a request naming anything else is refused."""

    verifiers: list[str]
    methods: list[str]
    generators: list[str]
    selectors: list[str]

    @classmethod
    def from_registry(cls, verifiers: list[str]) -> Choices:
        from xfr import registry

        masks = registry.names("mask")
        selectors = [DEFAULT_SELECTOR]
        for name in registry.names("selector"):
            if name == "fixed":
                selectors += [f"fixed:{m}" for m in masks]
            elif name != DEFAULT_SELECTOR:
                selectors.append(name)
        methods = registry.names("explainer")
        methods = [DEFAULT_METHOD, *[m for m in methods if m != DEFAULT_METHOD]]
        # "default": the method's own generator (relevance: grad-rollout, paper: nograd-lrp)
        generators = [DEFAULT_GENERATOR, *registry.names("attention")]
        return cls(verifiers=verifiers, methods=methods, generators=generators,
                   selectors=selectors)


@dataclass
class ServeSettings:
    """Everything ``xfr serve`` was started with."""

    photos: Path | None = None
    verifiers: list[str] = field(default_factory=lambda: ["default"])
    max_bytes: int = DEFAULT_MAX_BYTES
    #: Result folders kept (the oldest are removed beyond this).
    keep: int = 100
    detector: str = "yunet"
    workdir: Path | None = None


class FormError(Exception):
    """A mistake of the request: shown on the form with ``status``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _clean_name(name: str) -> str:
    base = Path(name.replace("\\", "/")).name
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._") or "photo"
    return base[:80]


def _megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def check_image(data: bytes, label: str) -> str:
    """The image format of ``data`` (``"jpeg"``, ``"png"``...), or :class:`FormError` when it is
    not an image Pillow can read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = (im.format or "").lower()
            im.verify()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise FormError(f"{label} is not an image that can be read (JPEG, PNG, BMP, WebP or "
                        "TIFF)") from None
    return fmt


class Service:
    """The shared state of the app: settings, choices, the result folders, the model lock."""

    def __init__(self, settings: ServeSettings, choices: Choices) -> None:
        import tempfile

        self.settings = settings
        self.choices = choices
        self.photos = list_photos(settings.photos)
        self._own_workdir = settings.workdir is None
        self.workdir = Path(settings.workdir or tempfile.mkdtemp(prefix="xfr-serve-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        #: One folder per result (``/r/<id>/``); the assets are in ``workdir/assets``.
        self.results = self.workdir / "results"
        self.results.mkdir(exist_ok=True)
        self.model_lock = threading.Lock()
        #: The one thread that runs the model passes and writes the pages: the requests wait
        #: their turn anyway (the lock), and one thread keeps the allocator's memory flat
        #: (each thread that allocates gets its own malloc arena, which grows and stays).
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xfr-model")
        self._files_lock = threading.Lock()
        self.env = None

    async def run(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` on the model thread, awaited."""
        import asyncio

        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def environment(self) -> Any:
        if self.env is None:
            from xfr.site.report import _environment

            self.env = _environment()
        return self.env

    def new_folder(self) -> tuple[str, Path]:
        """A fresh result folder; the oldest beyond ``keep`` are removed."""
        rid = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}"
        folder = self.results / rid
        folder.mkdir(parents=True)
        with self._files_lock:
            folders = sorted((p for p in self.results.iterdir() if p.is_dir()),
                             key=lambda p: p.stat().st_mtime)
            for old in folders[: max(0, len(folders) - self.settings.keep)]:
                if old != folder:
                    shutil.rmtree(old, ignore_errors=True)
        return rid, folder

    def explain(self, probe: Path, gallery: Path, verifier: str, method: str,
                generator: str, selector: str) -> Any:
        """:func:`xfr.explain` on the two files, one model pass at a time."""
        from xfr.api import explain

        options: dict[str, Any] = {}
        if method in ("paper", "relevance") and generator != DEFAULT_GENERATOR:
            options["generator"] = generator
        if method == "paper":
            options["selector"] = selector
        with self.model_lock:
            return explain(str(probe), str(gallery), verifier=verifier, method=method,
                           detector=self.settings.detector, **options)

    def render_form(self, error: str | None = None, values: dict[str, str] | None = None) -> str:
        page: str = self.environment().get_template("serve.html.j2").render(
            title="xfr serve: explain a face pair", assets="/assets", error=error,
            choices=self.choices, photos=self.photos, values=values or {},
            limit=_megabytes(self.settings.max_bytes))
        return page


def create_app(settings: ServeSettings, choices: Choices | None = None) -> Any:
    """The Starlette application of ``xfr serve``. The verifiers named in ``settings`` should
    be loaded before (``xfr serve`` does), so that the first request does not wait for them."""
    require_web()
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from xfr.site.report import copy_assets, write_pair_page

    service = Service(settings, choices or Choices.from_registry(settings.verifiers))
    assets = service.workdir / "assets"
    copy_assets(service.workdir)

    async def form(request: Request) -> Response:
        return HTMLResponse(service.render_form())

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "verifiers": service.choices.verifiers})

    async def read_photo(form_data: Any, side: str, folder: Path) -> tuple[Path, str]:
        """The photo of ``side`` saved into ``folder``: an upload, or a pick from --photos."""
        upload = form_data.get(side)
        if upload is not None and not isinstance(upload, str) and upload.filename:
            data = await upload.read()
            name = upload.filename
            if len(data) > settings.max_bytes:
                raise FormError(f"the {side} photo {name!r} is {_megabytes(len(data))}; the "
                                f"limit is {_megabytes(settings.max_bytes)}", 413)
            if not data:
                raise FormError(f"the {side} photo {name!r} is empty")
            await run_in_threadpool(check_image, data, f"the {side} file {name!r}")
            path = folder / side / _clean_name(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            return path, name
        pick = str(form_data.get(f"{side}_pick") or "")
        if pick:
            if pick not in service.photos or settings.photos is None:
                raise FormError(f"no such photo to pick for the {side}: {pick!r}")
            src = settings.photos / pick
            path = folder / side / _clean_name(src.name)
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, path)
            return path, pick
        raise FormError(f"choose a {side} photo: upload one"
                        + (" or pick one from the list" if service.photos else ""))

    def choice(form_data: Any, key: str, allowed: list[str]) -> str:
        value = str(form_data.get(key) or allowed[0])
        if value not in allowed:
            raise FormError(f"unknown {key} {value!r}; choose one of: {', '.join(allowed)}")
        return value

    async def explain(request: Request) -> Response:
        values: dict[str, str] = {}
        try:
            length = request.headers.get("content-length")
            if length and length.isdigit() and int(length) > 2 * settings.max_bytes + 65536:
                raise FormError(f"the upload is {_megabytes(int(length))}; the limit is "
                                f"{_megabytes(settings.max_bytes)} per photo", 413)
            try:
                form_data = await request.form(max_files=2, max_fields=16)
            except Exception as exc:  # malformed multipart body
                raise FormError(f"the form could not be read ({type(exc).__name__})") from None
            c = service.choices
            values = {k: str(form_data.get(k) or "") for k in
                      ("verifier", "method", "generator", "selector", "probe_pick",
                       "gallery_pick")}
            verifier = choice(form_data, "verifier", c.verifiers)
            method = choice(form_data, "method", c.methods)
            generator = choice(form_data, "generator", c.generators)
            selector = choice(form_data, "selector", c.selectors)
            rid, folder = service.new_folder()
            probe, probe_name = await read_photo(form_data, "probe", folder)
            gallery, gallery_name = await read_photo(form_data, "gallery", folder)
            try:
                e = await service.run(service.explain, probe, gallery, verifier, method,
                                      generator, selector)
            except (UserError, ValueError, OSError) as exc:
                text = " ".join(str(exc).split())
                for path, name in ((probe, probe_name), (gallery, gallery_name)):
                    text = text.replace(str(path), repr(name)[1:-1])
                status = 422 if "face" in text else 400
                raise FormError(f"could not explain this pair: {text}", status) from None

            def page() -> None:
                write_pair_page(e, folder, "pair", "index.html",
                                home={"href": "/", "text": "explain another pair"},
                                env=service.environment(), extra={"assets": "/assets"})

            await service.run(page)
        except FormError as exc:
            return HTMLResponse(service.render_form(str(exc), values), status_code=exc.status)
        except Exception as exc:  # a bug: said in one line, logged on the server's stderr
            print(f"xfr serve: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
            return HTMLResponse(service.render_form(
                f"internal error ({type(exc).__name__}); the server's log has the details",
                values), status_code=500)
        return RedirectResponse(f"/r/{rid}/", status_code=303)

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        yield
        service.close()

    app = Starlette(routes=[
        Route("/", form), Route("/health", health), Route("/explain", explain, methods=["POST"]),
        Mount("/assets", app=StaticFiles(directory=assets), name="assets"),
        Mount("/r", app=StaticFiles(directory=service.results, html=True), name="results"),
    ], lifespan=lifespan)
    app.state.service = service
    return app


__all__ = ["DEFAULT_MAX_BYTES", "Choices", "FormError", "ServeSettings", "Service",
           "check_image", "create_app", "list_photos", "require_web"]

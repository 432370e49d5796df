"""``xfr serve``: a local web app to try two photos: upload (or pick) a probe and a gallery
photo, choose verifier, method, generator and selector, and see the pair's page of the HTML
report (``xfr report``).

Listens on 127.0.0.1 (this machine only) unless ``--host`` says otherwise. Needs the web extra:
``pip install 'xfr[web]'``. The models are loaded once, before the server listens, and shared by
every request; results are the same as ``xfr explain PROBE GALLERY`` on the same files.
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path
from typing import Any

from xfr.errors import OptionError

#: One-line help of the command (``xfr --help``).
HELP = "a local web app: upload two photos and see why they match or not"


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve", help=HELP, description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: %(default)s, this machine only)")
    p.add_argument("--port", type=int, default=8000,
                   help="port to listen on; 0 picks a free one (default: %(default)s)")
    p.add_argument("--photos", type=Path, default=None, metavar="DIR",
                   help="a folder of photos to pick from in the form (besides uploads)")
    p.add_argument("--verifier", action="append", default=None, metavar="SPEC",
                   help="verifier offered in the form, repeatable (default: default, the "
                        "bundled model)")
    p.add_argument("--max-upload-mb", type=float, default=10.0, metavar="MB",
                   help="largest photo accepted (default: %(default)s MB)")
    p.add_argument("--keep", type=int, default=100, metavar="N",
                   help="results kept on disk; older ones are removed (default: %(default)s)")
    p.add_argument("--detector", default="yunet", choices=["yunet", "dlib"],
                   help="face and landmark detector (default: %(default)s)")


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (a one-line error when it cannot be had)."""
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(info[0], socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(info[4])
        sock.listen(128)
    except OSError as exc:
        raise OptionError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def run(args: argparse.Namespace) -> int:
    from xfr.site.serve import DEFAULT_SELECTOR, Choices, ServeSettings, require_web

    if not 0 <= args.port <= 65535:
        raise OptionError(f"--port must be 0..65535, got {args.port}")
    if args.max_upload_mb <= 0:
        raise OptionError(f"--max-upload-mb must be > 0, got {args.max_upload_mb}")
    if args.keep < 1:
        raise OptionError(f"--keep must be >= 1, got {args.keep}")
    if args.photos is not None and not args.photos.is_dir():
        raise FileNotFoundError(f"--photos: no such folder: {args.photos}")
    require_web()
    verifiers = list(dict.fromkeys(args.verifier or ["default"]))
    choices = Choices.from_registry(verifiers)
    assert choices.selectors[0] == DEFAULT_SELECTOR
    sock = listen(args.host, args.port)
    from xfr.api import load_verifier

    for v in verifiers:  # loaded once, before the first request, shared by all
        load_verifier(v)
    import uvicorn

    from xfr.site.serve import create_app

    settings = ServeSettings(photos=args.photos, verifiers=verifiers,
                             max_bytes=int(args.max_upload_mb * 1024 * 1024), keep=args.keep,
                             detector=args.detector)
    app = create_app(settings, choices)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"xfr serve: http://{shown}:{port}/ (Ctrl+C stops)", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_keep_alive=30)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    print("xfr serve: stopped", file=sys.stderr)
    return 0

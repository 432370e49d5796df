"""A bounded load test of ``xfr serve``: N concurrent clients (default 8) post the same two
photos for a fixed time (default 60 s) on the loopback interface, then it stops by itself.

Starts ``xfr serve --port 0`` (bundled model) unless ``--url`` names a running one (loopback
only), and reports requests per second, latency percentiles (the POST, its 303 and the result
page), failed requests and the server's resident memory over the run (from ``/proc``)::

    python benchmarks/load_serve.py                      # 8 clients, 60 s, an LFW fold-10 pair
    python benchmarks/load_serve.py --clients 4 --seconds 20 --json

Exit status 1 when a request failed or the server's memory grew by more than ``--max-growth``
(default 10 %) over the second half of the run (the first half warms up the allocator and the
worker threads).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent


def default_pair() -> tuple[Path, Path]:
    """The first genuine pair of LFW fold 10 ($XFR_LFW or ../shared/data/lfw)."""
    sys.path.insert(0, str(ROOT))
    from xfr.data.lfw import read_pairs

    root = Path(os.environ.get("XFR_LFW") or ROOT.parent / "shared" / "data" / "lfw")
    pair = next(p for p in read_pairs(root / "pairs.txt", root) if p.fold == 10 and p.same)
    return pair.probe, pair.gallery


def multipart(files: dict[str, Path]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; filename="{p.name}"\r\n'
        f"Content-Type: image/jpeg\r\n\r\n".encode() + p.read_bytes() + b"\r\n"
        for k, p in files.items()) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def rss_kib(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    m = re.search(r"VmRSS:\s+(\d+)", text)
    return int(m.group(1)) if m else None


def one_request(host: str, port: int, body: bytes, ctype: str) -> None:
    """POST /explain, expect 303, GET the result page, expect 200 with a decision."""
    conn = http.client.HTTPConnection(host, port, timeout=180)
    try:
        conn.request("POST", "/explain", body=body, headers={"Content-Type": ctype})
        r = conn.getresponse()
        r.read()
        if r.status != 303:
            raise RuntimeError(f"POST /explain answered {r.status}")
        conn.request("GET", r.getheader("Location") or "/")
        page = conn.getresponse()
        html = page.read()
        if page.status != 200 or b'id="verdict"' not in html:
            raise RuntimeError(f"result page answered {page.status}")
    finally:
        conn.close()


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))
    return s[k]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default=None, help="a running xfr serve on loopback")
    ap.add_argument("--pid", type=int, default=None, help="its process id (for memory)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--probe", type=Path, default=None)
    ap.add_argument("--gallery", type=Path, default=None)
    ap.add_argument("--max-growth", type=float, default=0.10,
                    help="largest accepted memory growth over the second half (fraction)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    if not 1 <= args.clients <= 64 or not 0 < args.seconds <= 600:
        ap.error("--clients must be 1..64 and --seconds 0..600")
    probe, gallery = (args.probe, args.gallery) if args.probe and args.gallery \
        else default_pair()
    server = None
    if args.url is None:
        # from a neutral folder: ``python -m`` would import a source checkout's xfr/ instead
        # of the installed package
        server = subprocess.Popen([sys.executable, "-m", "xfr", "serve", "--port", "0"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                  cwd=tempfile.gettempdir())
        assert server.stdout is not None
        line = server.stdout.readline()
        m = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        if not m:
            server.kill()
            print(f"xfr serve did not start: {line!r}", file=sys.stderr)
            return 1
        url, pid = m.group(1), server.pid
    else:
        url, pid = args.url, args.pid
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 80
    if host not in ("127.0.0.1", "localhost", "::1"):
        ap.error(f"loopback only: {host}")
    body, ctype = multipart({"probe": probe, "gallery": gallery})
    latencies: list[float] = []
    failures: list[str] = []
    memory: list[tuple[float, int]] = []
    lock = threading.Lock()
    try:
        for _ in range(60):  # the server binds at once; the first request may wait for it
            try:
                one_request(host, port, body, ctype)  # warm-up
                break
            except OSError:
                time.sleep(1)
        start = time.monotonic()
        deadline = start + args.seconds
        warm_rss = rss_kib(pid) if pid else None
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                if pid and (kib := rss_kib(pid)) is not None:
                    memory.append((time.monotonic() - start, kib))
                stop.wait(1.0)

        def client() -> None:
            while time.monotonic() < deadline:
                t = time.monotonic()
                try:
                    one_request(host, port, body, ctype)
                except Exception as exc:
                    with lock:
                        failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                with lock:
                    latencies.append(time.monotonic() - t)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
        stop.set()
        sampler.join()
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    rss = [k for _, k in memory]
    end_rss = rss[-1] if rss else None
    half_rss = next((k for t, k in memory if t >= elapsed / 2), None)
    # flat memory: what the second half of the run added (the first half warms up the
    # allocator and the worker threads)
    growth = (end_rss - half_rss) / half_rss if end_rss and half_rss else None
    result = {
        "clients": args.clients, "seconds": round(elapsed, 1), "requests": len(latencies),
        "failed": len(failures), "requests_per_second": round(len(latencies) / elapsed, 3),
        "latency_s": {"p50": round(percentile(latencies, 50), 3),
                      "p95": round(percentile(latencies, 95), 3),
                      "max": round(max(latencies, default=float("nan")), 3)},
        "rss_mib": {"after_warmup": round(warm_rss / 1024, 1) if warm_rss else None,
                    "half_time": round(half_rss / 1024, 1) if half_rss else None,
                    "end": round(end_rss / 1024, 1) if end_rss else None,
                    "max": round(max(rss) / 1024, 1) if rss else None},
        "rss_growth_second_half": round(growth, 4) if growth is not None else None,
        "rss_series_mib": [[round(t), round(k / 1024)] for t, k in memory[::5]],
        "cpus": os.cpu_count(), "load_average": [round(x, 1) for x in os.getloadavg()],
        "pair": [str(probe), str(gallery)], "errors": failures[:5],
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['requests']} requests in {result['seconds']} s from {args.clients} "
              f"clients: {result['requests_per_second']} requests/s, latency p50 "
              f"{result['latency_s']['p50']} s, p95 {result['latency_s']['p95']} s, max "
              f"{result['latency_s']['max']} s; {result['failed']} failed; server memory "
              f"{result['rss_mib']['after_warmup']} -> {result['rss_mib']['half_time']} -> "
              f"{result['rss_mib']['end']} MiB (max "
              f"{result['rss_mib']['max']}); load average {result['load_average']} on "
              f"{result['cpus']} CPUs")
    too_much = growth is not None and growth > args.max_growth
    return 1 if failures or too_much or not latencies else 0


if __name__ == "__main__":
    sys.exit(main())

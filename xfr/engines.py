"""Where the model passes of many pairs run: this process (``local``) or a Ray cluster (``ray``).

An engine maps a :class:`Job` over a list of items (each a chunk of pairs) and yields
``(position, result)`` as results come in, in any order. The job's :meth:`Job.setup` runs once
per worker (it loads the verifier); :meth:`Job.compute` runs once per item. The driver, never
the engine, writes files, keeps caches and aggregates, so both engines give the same files.

Ray (``pip install 'xfr[ray]'``) is imported only when the Ray engine starts: ``--engine ray``
joins the cluster of ``--ray-address`` or ``$RAY_ADDRESS``, else starts a local one. The work
runs on Ray Data: ``ray.data.from_items(items).map_batches(Worker, concurrency=N,
num_cpus=C, num_gpus=G)``, a pool of actors, each loading the verifier once; results stream
back to the driver, so memory stays bounded by what is in flight. A worker that dies is
restarted and its unfinished items run again (:data:`RETRIES` times at most); the driver keeps
the first result of each item, so nothing is lost or counted twice.
"""

from __future__ import annotations

import functools
import os
import pickle
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from xfr.errors import MissingDependencyError, OptionError, UserError

ENGINES = ("local", "ray")
#: How often a Ray worker that died is restarted, and its task run again.
RETRIES = 3
#: How ``--engine ray`` is installed.
RAY_HINT = "pip install 'xfr[ray]' (or pip install 'ray[data]')"


class Job(Protocol):
    """A picklable description of per-item work (sent to every Ray worker)."""

    def setup(self) -> Any:
        """Per worker, once: e.g. load the verifier. Returns the state :meth:`compute` gets."""

    def compute(self, state: Any, item: Any) -> Any:
        """One item's result (picklable)."""


def check_ray() -> None:
    """:class:`~xfr.errors.MissingDependencyError` (one line, exit status 2) when Ray Data is
    not installed; imports nothing when it is not asked for."""
    import importlib.util

    try:
        found = importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):
        found = False
    if found:
        try:
            import ray.data  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError(
                f"--engine ray needs Ray Data, which cannot be imported ({exc}): "
                f"{RAY_HINT}") from None
        return
    raise MissingDependencyError(f"--engine ray needs Ray, which is not installed: {RAY_HINT}")


class LocalEngine:
    """Every item in this process, in order (the job is set up once)."""

    name = "local"

    def describe(self) -> str:
        return "local (this process)"

    def start(self) -> None:
        """Nothing to start."""

    def map(self, job: Job, items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        if not items:
            return
        state = job.setup()
        for i, item in enumerate(items):
            yield i, job.compute(state, item)


class RayWorker:
    """A Ray Data actor: sets the job up once (``__init__``), then computes one item per call.

    Rows are ``{"i": position, "item": pickled item}``; the output rows are
    ``{"i": position, "out": pickled result}``."""

    def __init__(self, job: bytes, threads: int | None = None, device: str | None = None
                 ) -> None:
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        if device is not None:
            from xfr.api import set_default_device

            set_default_device(device)
        self.job = pickle.loads(job)
        self.state = self.job.setup()

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        outs = [pickle.dumps(self.job.compute(self.state, pickle.loads(b)))
                for b in batch["item"]]
        return {"i": np.asarray(batch["i"]), "out": np.array(outs, dtype=object)}


def worker_runtime_env() -> dict[str, str]:
    """Ray's runtime environment for xfr's workers: a working folder of their own.

    Without one, Ray puts the driver's current folder first on every worker's ``sys.path``;
    run from a source checkout of xfr (as the test suite is), the workers would then import
    that checkout, which has no compiled kernels, instead of the installed package. One
    folder per process, however many clusters it starts or joins.
    """
    return {"working_dir": str(_worker_folder())}


@functools.cache
def _worker_folder() -> Path:
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="xfr-ray-"))
    (folder / "README").write_text("working folder of xfr's Ray workers\n")
    return folder


class RayEngine:
    """The items on a Ray cluster, one actor per worker (:class:`RayWorker`).

    ``address``: a cluster to join (``"127.0.0.1:6379"``, ``"auto"``...); default
    ``$RAY_ADDRESS``, else a local cluster of ``local_cpus`` CPUs (default: all) is started.
    ``num_cpus``/``num_gpus``: resources of each worker (with ``num_gpus`` > 0 the model runs
    on the worker's GPU). ``threads``: each worker's PyTorch threads (default ``num_cpus``).
    ``workers``: how many (default: as many as the cluster's CPUs, or GPUs, allow).
    ``worker_class``: a subclass of :class:`RayWorker` (instrumentation, tests).

    Results equal the local engine's bit for bit when both run PyTorch with the same number
    of threads (``xfr ... --threads N`` locally, ``--threads N`` or ``--num-cpus N`` on Ray):
    PyTorch's CPU matrix products choose their blocking by thread count and batch size, and a
    last-bit difference in an embedding can move a curve step across the threshold
    (docs/design.md, "Engines")."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: float = 1, num_gpus: float = 0,
                 workers: int | None = None, local_cpus: int | None = None,
                 worker_class: type[RayWorker] | None = None, threads: int | None = None
                 ) -> None:
        if num_cpus <= 0:
            raise OptionError(f"--num-cpus must be > 0, got {num_cpus}")
        if threads is not None and threads < 1:
            raise OptionError(f"--threads must be >= 1, got {threads}")
        if num_gpus < 0:
            raise OptionError(f"--num-gpus must be >= 0, got {num_gpus}")
        if workers is not None and workers < 1:
            raise OptionError(f"--workers must be >= 1, got {workers}")
        check_ray()
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.num_cpus, self.num_gpus = num_cpus, num_gpus
        self.workers = workers
        self.threads = threads if threads is not None else max(1, int(num_cpus))
        self.local_cpus = local_cpus
        self.worker_class = worker_class or RayWorker
        self.started = False

    def describe(self) -> str:
        where = self.address or "a local Ray cluster"
        return (f"ray ({where}, {self.pool_size()} worker(s) x {self.num_cpus:g} CPU"
                + (f" + {self.num_gpus:g} GPU" if self.num_gpus else "")
                + f", {self.threads} PyTorch thread(s) each)")

    def start(self) -> None:
        """Join (or start) the cluster; quiet Ray Data's own progress bars."""
        import logging

        import ray

        runtime_env = worker_runtime_env()

        if not ray.is_initialized():
            try:
                if self.address:
                    ray.init(address=self.address, logging_level=logging.ERROR,
                             log_to_driver=False, runtime_env=runtime_env)
                else:
                    # address="local": a new cluster, never one found running on this machine
                    ray.init(address="local", num_cpus=self.local_cpus or os.cpu_count() or 1,
                             include_dashboard=False, logging_level=logging.ERROR,
                             log_to_driver=False, runtime_env=runtime_env)
            except Exception as exc:  # ConnectionError, TimeoutError, Ray's own exceptions
                ray.shutdown()
                where = (f"join the Ray cluster at {self.address}" if self.address
                         else "start a local Ray cluster")
                raise UserError(f"cannot {where}: {type(exc).__name__}: "
                                f"{' '.join(str(exc).split())}") from None
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        self.started = True

    def pool_size(self) -> int:
        if self.workers is not None:
            return self.workers
        if not self.started:
            self.start()
        import ray

        resources = ray.cluster_resources()
        if self.num_gpus > 0:
            n = int(resources.get("GPU", 0) // self.num_gpus)
            if n < 1:
                raise OptionError(f"--num-gpus {self.num_gpus:g}: the Ray cluster has "
                                  f"{resources.get('GPU', 0):g} GPU(s)")
        else:
            n = int(resources.get("CPU", 1) // self.num_cpus)
        return max(1, n)

    def map(self, job: Job, items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        if not items:
            return
        if not self.started:
            self.start()
        import numpy as np
        import ray

        rows = [{"i": i, "item": pickle.dumps(item)} for i, item in enumerate(items)]
        ds: ray.data.Dataset = ray.data.from_items(rows,
                                                   override_num_blocks=min(len(rows), 10_000))
        device = "cuda" if self.num_gpus > 0 else None
        ds = ds.map_batches(
            self.worker_class, fn_constructor_args=(pickle.dumps(job), self.threads, device),
            batch_size=1, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=min(self.pool_size(), len(rows))),
            num_cpus=self.num_cpus, num_gpus=self.num_gpus or None,
            # a dead worker is restarted and its task run again, a few times: an item that
            # kills its worker every time stops the run instead of looping forever
            max_restarts=RETRIES, max_task_retries=RETRIES)
        seen: set[int] = set()
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for i, out in zip(np.asarray(batch["i"]).tolist(), batch["out"], strict=True):
                if i in seen:  # a retried item that had already come back: keep the first
                    continue
                seen.add(i)
                yield int(i), pickle.loads(out)


def make_engine(name: str, *, address: str | None = None, num_cpus: float = 1,
                num_gpus: float = 0, workers: int | None = None, threads: int | None = None
                ) -> LocalEngine | RayEngine:
    """The engine of ``--engine NAME``; Ray options with the local engine are refused."""
    if name not in ENGINES:
        raise OptionError(f"unknown engine {name!r}; choose one of {ENGINES}")
    if name == "local":
        given = [flag for flag, value, default in (
            ("--ray-address", address, None), ("--num-cpus", num_cpus, 1),
            ("--num-gpus", num_gpus, 0), ("--workers", workers, None)) if value != default]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise OptionError(f"{', '.join(given)} {verb} to --engine ray only")
        return LocalEngine()
    return RayEngine(address=address, num_cpus=num_cpus, num_gpus=num_gpus, workers=workers,
                     threads=threads)


__all__ = ["ENGINES", "Job", "LocalEngine", "RayEngine", "RayWorker", "check_ray",
           "make_engine"]

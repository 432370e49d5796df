"""``--engine ray``: the same files as the local engine, bit for bit, on a local Ray cluster
(session fixture), on a two-node cluster started here with ``ray start``, and when a worker
process dies in the middle of a run (Ray restarts it and runs its task again: nothing is lost
or duplicated). Real Ray, real LFW faces, the bundled model; a few pairs each (2 cores)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from batch_lists import same_results, summary, write_list

from xfr import cli
from xfr.batch import BatchSettings, run_batch
from xfr.engines import LocalEngine, RayEngine, RayWorker, worker_runtime_env

ray = pytest.importorskip("ray", reason="Ray is in the test extra (pip install '.[test]')")

pytestmark = [pytest.mark.lfw, pytest.mark.slow]


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """A local Ray cluster of 2 CPUs for the session (``address="local"``: never one found
    running on this machine)."""
    for attempt in range(3):  # a loaded 2-core machine can miss Ray's 30 s raylet start
        try:
            ray.init(address="local", num_cpus=2, include_dashboard=False,
                     logging_level=logging.ERROR, log_to_driver=False,
                     runtime_env=worker_runtime_env())
            break
        except Exception:
            ray.shutdown()
            if attempt == 2:
                raise
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory, lfw_root: Path) -> tuple[Path, Path]:
    """(list, output folder) of the local engine on 2 LFW pairs, a photo without a face and a
    file that is no image, in batches of 2."""
    folder = tmp_path_factory.mktemp("local")
    listing = write_list(folder, lfw_root, 2, bad=True)
    out = folder / "out"
    result = run_batch(BatchSettings(listing, out, pairs_per_batch=2, figures=False,
                                     quiet=True), LocalEngine())
    assert (result.total, result.failed) == (4, 2)
    return listing, out


def test_ray_writes_the_local_files_and_resumes_across_engines(
        ray_cluster: None, local_run: tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    listing, local = local_run
    out = tmp_path / "ray"
    code = cli.main(["explain", "--pairs", str(listing), "--out", str(out), "--batch-size",
                     "2", "--no-figures", "--engine", "ray", "--workers", "2"])
    std = capsys.readouterr()
    assert code == 1, std.err
    assert "on ray (a local Ray cluster, 2 worker(s) x 1 CPU, 1 PyTorch thread(s) each)" in std.err
    assert std.out.strip().splitlines()[-1] == f"2 of 4 pairs failed, see {out / 'summary.csv'}"
    same_results(local, out)
    # the cache works across engines: the local engine reuses what Ray wrote (the driver
    # decides what is done, the same code for both engines)
    back = run_batch(BatchSettings(listing, out, pairs_per_batch=2, figures=False,
                                   quiet=True), LocalEngine())
    assert (back.reused, back.computed, back.failed) == (2, 2, 2)


class KillOnce(RayWorker):
    """A worker that kills its own process at the start of a task the first time the marker
    file exists (taken atomically by renaming it, so exactly one worker dies once)."""

    marker = ""

    def __call__(self, batch: dict) -> dict:
        try:
            os.rename(self.marker, self.marker + ".taken")
        except OSError:
            return super().__call__(batch)
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(
        ray_cluster: None, local_run: tuple[Path, Path], tmp_path: Path) -> None:
    import ray.cloudpickle

    listing, local = local_run
    marker = tmp_path / "kill-a-worker"
    marker.write_text("")
    KillOnce.marker = str(marker)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    out = tmp_path / "ray"
    result = run_batch(BatchSettings(listing, out, pairs_per_batch=1, figures=False,
                                     quiet=True), RayEngine(workers=2, worker_class=KillOnce))
    assert (marker.with_name(marker.name + ".taken")).exists()  # a worker did die
    assert (result.total, result.computed, result.failed) == (4, 4, 2)
    rows = summary(out)
    assert [r["index"] for r in rows] == [str(i) for i in range(4)]
    same_results(local, out)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_two_node_cluster(local_run: tuple[Path, Path], tmp_path: Path) -> None:
    """``ray start --head`` and a second ``ray start --address`` (one CPU each) on this
    machine; ``xfr explain --pairs --ray-address`` uses both workers. The nodes are stopped by
    ending the two ``ray start --block`` processes this test started (which ends their Ray
    processes), not by ``ray stop``, which would end every Ray cluster on the machine."""
    listing, local = local_run
    ray_bin = Path(sys.executable).with_name("ray")
    port = _free_port()
    address = f"127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    common = ["--num-cpus=1", "--node-ip-address=127.0.0.1", "--block",
              "--object-store-memory=100000000", "--disable-usage-stats"]
    nodes = [subprocess.Popen([str(ray_bin), "start", "--head", f"--port={port}",
                               "--include-dashboard=false", *common], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)]
    try:
        _wait_for_nodes(ray_bin, address, 1, env)
        nodes.append(subprocess.Popen([str(ray_bin), "start", f"--address={address}", *common],
                                      env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True))
        _wait_for_nodes(ray_bin, address, 2, env)
        out = tmp_path / "two-nodes"
        done = subprocess.run(
            [sys.executable, "-m", "xfr", "explain", "--pairs", str(listing), "--out",
             str(out), "--batch-size", "2", "--no-figures", "--engine", "ray",
             "--ray-address", address], env=env, capture_output=True, text=True,
            timeout=240)
        assert done.returncode == 1, done.stderr
        assert f"on ray ({address}, 2 worker(s) x 1 CPU, 1 PyTorch" in done.stderr
        same_results(local, out)
    finally:
        for node in reversed(nodes):
            node.terminate()
        for node in reversed(nodes):
            try:
                node.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
                node.wait(timeout=10)


def _wait_for_nodes(ray_bin: Path, address: str, n: int, env: dict[str, str]) -> None:
    """Until ``ray status`` lists ``n`` active nodes (at most 90 s)."""
    deadline = time.monotonic() + 90
    text = ""
    while time.monotonic() < deadline:
        done = subprocess.run([str(ray_bin), "status", f"--address={address}"], env=env,
                              capture_output=True, text=True, timeout=60)
        text = done.stdout
        active = text.split("Active:")[1].split("Pending:")[0] if "Active:" in text else ""
        if active.count("node_") >= n:
            return
        time.sleep(1)
    raise AssertionError(f"the Ray cluster at {address} did not get {n} nodes: {text}")


def _untimed(x: object) -> object:
    """``x`` without the keys that hold wall times or the command line."""
    if isinstance(x, dict):
        return {k: _untimed(v) for k, v in x.items() if k not in ("seconds", "command")}
    if isinstance(x, list):
        return [_untimed(v) for v in x]
    return x


def test_evaluate_and_sanity_on_ray_give_the_local_tables(
        ray_cluster: None, lfw_root: Path, tmp_path: Path) -> None:
    """``xfr evaluate --engine ray``: the same cached records and tables, byte for byte, as
    the local engine at the same PyTorch thread count (``--threads 1`` here, one thread per
    worker there: ``--num-cpus 1``); ``run_sanity`` on Ray: the same results (wall times
    apart)."""
    import torch

    from xfr.evaluation.sanity import run_sanity

    listing = write_list(tmp_path, lfw_root, 2)
    common = ["evaluate", "--pairs", str(listing), "--root", "/", "--methods",
              "paper,attention,random", "--generators", "rollout", "--steps", "2",
              "--bootstrap", "50", "--batch-size", "2", "--no-progress"]
    threads = torch.get_num_threads()
    try:
        assert cli.main([*common, "--out", str(tmp_path / "local"), "--threads", "1"]) == 0
        local = run_sanity(listing, "/", limit=2, generators=("rollout",), n_boot=50,
                           batch_size=1, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert cli.main([*common, "--out", str(tmp_path / "ray"), "--engine", "ray",
                     "--workers", "2"]) == 0
    for name in ("table1.csv", "deletion.csv", "differences.csv", "accuracy.md", "table1.md"):
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "ray" / name).read_bytes()
    records = sorted(p.relative_to(tmp_path / "local")
                     for p in (tmp_path / "local" / "cache").rglob("*.json"))
    assert len(records) >= 2  # the paper unit's 2 pairs, the random unit's accepted ones
    for rel in records:
        assert (tmp_path / "local" / rel).read_text() == (tmp_path / "ray" / rel).read_text()

    distributed = run_sanity(listing, "/", limit=2, generators=("rollout",), n_boot=50,
                             batch_size=1, progress=False, engine=RayEngine(workers=2))
    assert _untimed(local) == _untimed(distributed)

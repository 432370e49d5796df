"""10,000 repeated kernel calls leave the process's memory (RSS) within 1 MiB: no leak in the
bindings, the thread pool or the per-thread scratch buffers, nor on the error path."""

from __future__ import annotations

import os

import numpy as np
import pytest

from xfr import kernels

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_ten_thousand_calls_grow_memory_by_less_than_1_mib() -> None:
    rng = np.random.default_rng(0)
    maps = rng.random((2, 12, 12), dtype=np.float32)
    masks = maps > 0.5
    bad = maps.copy()
    bad[1, 2, 3] = np.nan
    # big enough for the work estimate to start a second thread (4 x 64 x 64 x 2 x 15 taps)
    larger = rng.random((4, 64, 64), dtype=np.float32)

    def one_round() -> None:
        _, m = kernels.otsu(maps)
        kernels.combine(m, masks, "and")
        kernels.combine_maps(maps, maps, m, masks, "and")
        kernels.dilate(maps, 3)
        kernels.gaussian(larger, 15, 3.0)
        kernels.smooth_heatmap(maps, 3, 9, 2.0)
        with pytest.raises(ValueError, match="NaN"):
            kernels.smooth_heatmap(bad, 3, 9, 2.0)

    kernels.set_num_threads(2)  # a thread is started and joined by the Gaussian of each round
    try:
        for _ in range(200):  # warm up allocator pools and caches
            one_round()
        before = rss_bytes()
        for _ in range(10_000 // 7 + 1):  # 7 kernel calls per round
            one_round()
        grown = rss_bytes() - before
    finally:
        kernels.set_num_threads(0)
    assert grown < 1 << 20, f"RSS grew by {grown / 1024:.0f} KiB"

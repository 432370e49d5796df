"""The compiled kernels run in parallel and are thread-safe: 8 Python threads calling at once
get the results of a lone call, and the thread count never changes a result."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from kernel_reference import random_maps

from xfr import kernels

MAPS = random_maps(0, "blobs", 6, 112, 112)
MASKS = MAPS > 0.5


def run_all() -> list[Any]:
    t, m = kernels.otsu(MAPS)
    return [
        t, m,
        kernels.combine(m, MASKS, "xor"),
        kernels.combine_maps(MAPS, MAPS[::-1].copy(), m, MASKS, "or"),
        kernels.dilate(MAPS),
        kernels.gaussian(MAPS),
        kernels.smooth_heatmap(MAPS),
    ]


def assert_same(a: list[Any], b: list[Any]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.fixture
def threads() -> Iterator[Callable[[int], None]]:
    yield kernels.set_num_threads
    kernels.set_num_threads(0)


def test_eight_python_threads_at_once_get_identical_results() -> None:
    expected = run_all()
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(run_all) for _ in range(16)]
        for f in futures:
            assert_same(f.result(), expected)


def test_the_thread_count_does_not_change_results(threads: Callable[[int], None]) -> None:
    threads(1)
    one = run_all()
    for n in (2, 3, 8):
        threads(n)
        assert kernels.get_num_threads() == n
        assert_same(run_all(), one)


def test_the_default_is_the_cpus_this_process_may_use(threads: Callable[[int], None]) -> None:
    import os

    threads(0)
    assert kernels.get_num_threads() == len(os.sched_getaffinity(0))


def test_a_bad_image_in_a_parallel_batch_is_reported_and_the_next_call_works(
        threads: Callable[[int], None]) -> None:
    threads(4)
    bad = np.concatenate([MAPS] * 4)
    bad[17, 5, 5] = np.nan
    with pytest.raises(ValueError, match=r"image 17\) contains NaN"):
        kernels.smooth_heatmap(bad)
    np.testing.assert_array_equal(kernels.smooth_heatmap(MAPS), run_all()[-1])

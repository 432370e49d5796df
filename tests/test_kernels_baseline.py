"""The compiled kernels exist twice, for the baseline ISA and for AVX2 (picked at run time,
with a fused multiply-add Gaussian where the CPU has FMA); both copies give the same results:
bit-identical masks, thresholds, combined maps, dilations and relevance steps, Gaussians within
1e-6.
XFR_KERNELS_BASELINE=1 forces the baseline copy in a fresh process, which is how this test
reaches it on an AVX2 machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPT = """
import sys
import numpy as np
from xfr import _kernels, kernels
rng = np.random.default_rng(4)
rel, den = rng.standard_normal((2, 3, 197, 131))
den[0, :9] = 0.0
den[1, :4] = -1e-9
maps = rng.random((3, 37, 53), dtype=np.float32)
smooth = np.stack([np.outer(np.hanning(112), np.hanning(112)).astype(np.float32)] * 2)
blobby = (0.8 * smooth[:, :60, :90] + 0.2 * rng.random((2, 60, 90))).astype(np.float32)
t, m = kernels.otsu(maps)
np.savez(sys.argv[1], t=t, m=m,
         c=kernels.combine(m, maps > 0.3, "xor"),
         s=kernels.combine_maps(maps, maps[::-1].copy(), m, maps > 0.3, "or"),
         d=kernels.dilate(maps, (7, 4)), r=kernels.dilate(maps, 5, "rect"),
         g=kernels.gaussian(maps, 30, 4.0), h=kernels.smooth_heatmap(blobby, 8, 36, 5.0),
         p=kernels.smooth_heatmap(smooth + maps[0, 0, 0]),
         q=_kernels.safe_divide(rel, den, 2),
         a=np.stack(_kernels.alpha_beta_shares(rel, den, np.abs(den) + rel * rel, 0.5, 2)))
"""


def run(tmp_path: Path, baseline: bool) -> dict[str, np.ndarray]:
    out = tmp_path / ("baseline.npz" if baseline else "default.npz")
    env = dict(os.environ, XFR_KERNELS_BASELINE="1" if baseline else "0")
    # run outside the checkout, so that the installed package (with its compiled module) is used
    subprocess.run([sys.executable, "-c", SCRIPT, str(out)], check=True, env=env, timeout=120,
                   cwd=tmp_path)
    with np.load(out) as data:
        return dict(data)


def test_baseline_and_avx2_copies_give_the_same_results(tmp_path: Path) -> None:
    default, baseline = run(tmp_path, False), run(tmp_path, True)
    assert default.keys() == baseline.keys()
    for key in "tmcsdrqa":  # exact arithmetic or selections
        np.testing.assert_array_equal(baseline[key], default[key], err_msg=key)
    np.testing.assert_allclose(baseline["g"], default["g"], atol=1e-6)
    # smoothed maps: final min-max of Gaussians whose ranges exceed 0.1, so within 1e-5
    np.testing.assert_allclose(baseline["h"], default["h"], atol=1e-5)
    np.testing.assert_allclose(baseline["p"], default["p"], atol=1e-5)

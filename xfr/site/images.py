"""The PNG images of the HTML report (:mod:`xfr.site`): faces, maps, masks, overlays, photos
with their face box, the colour bar, a pair's curves. Written with Pillow (the curves with
matplotlib), small enough to load at once in a browser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: Longest side of an original photo in the report (pixels).
PHOTO_SIDE = 360
#: The heatmap's colour map (the same as :func:`xfr.overlay.overlay` and the PNG figure).
COLORMAP = "jet"


def _jet(values: np.ndarray) -> np.ndarray:
    """``(H, W)`` values in [0, 1] -> ``(H, W, 3)`` uint8 through :data:`COLORMAP`."""
    from matplotlib import colormaps

    rgb = colormaps[COLORMAP](np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0))[..., :3]
    out: np.ndarray = np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)
    return out


def save_png(array: np.ndarray, path: Path) -> str:
    """Write a uint8 ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` array as PNG; returns its name."""
    from PIL import Image

    a = np.ascontiguousarray(array)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    if a.dtype != np.uint8:
        raise ValueError(f"save_png needs uint8 or bool, got {a.dtype}")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path, format="PNG")
    return path.name


def gray(face: np.ndarray) -> np.ndarray:
    """The face's luminance as RGB uint8 (what the heatmap is blended over)."""
    from xfr.overlay import luminance

    g = np.clip(np.rint(luminance(face) * 255), 0, 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=2)


def heat_rgb(heatmap: np.ndarray) -> np.ndarray:
    """The heatmap through the colour map, opaque (the page blends it with CSS opacity)."""
    return _jet(heatmap)


def masked(face: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The face with the masked (removed) pixels black, as the verifier saw it (fill zeros)."""
    out = np.array(face, dtype=np.uint8, copy=True)
    out[np.asarray(mask, dtype=bool)] = 0
    return out


def colorbar(height: int = 200, width: int = 16) -> np.ndarray:
    """A vertical colour bar, 1 (most important) at the top, 0 at the bottom."""
    ramp = np.linspace(1.0, 0.0, height, dtype=np.float32)[:, None].repeat(width, axis=1)
    return _jet(ramp)


def photo_with_box(path: str, box: dict[str, Any]) -> np.ndarray | None:
    """The photo at ``path`` (made upright by its EXIF orientation) scaled to at most
    :data:`PHOTO_SIDE` pixels, with the detected face's box drawn in green; ``None`` when the
    file is gone or unreadable."""
    from PIL import Image, ImageDraw

    from xfr.align import load_image
    from xfr.errors import InputError

    if not Path(path).is_file():
        return None
    try:
        photo = load_image(path)
    except (InputError, OSError):
        return None
    img = Image.fromarray(np.ascontiguousarray(photo[..., :3]).astype(np.uint8))
    scale = min(1.0, PHOTO_SIDE / max(img.size))
    if scale < 1.0:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.LANCZOS)
    x, y = box["x"] * scale, box["y"] * scale
    w, h = box["width"] * scale, box["height"] * scale
    line = max(2, round(max(img.size) / 150))
    ImageDraw.Draw(img).rectangle((x, y, x + w, y + h), outline=(0, 255, 0), width=line)
    return np.asarray(img)


def curves_png(curves: list[dict[str, Any]], fractions: list[float], threshold: float,
               path: Path) -> str:
    """One pair's deletion/insertion curves (distance per step) as a PNG: one panel per curve
    mode, one line per map, the threshold dashed. ``curves``: ``{"label", "mode", "values"}``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    modes = sorted({c["mode"] for c in curves})
    fig = Figure(figsize=(4.2 * len(modes), 3.2), dpi=90)
    axes = fig.subplots(1, len(modes), squeeze=False)[0]
    x = [100 * f for f in fractions]
    for ax, mode in zip(axes, modes, strict=True):
        for c in curves:
            if c["mode"] == mode and len(c["values"]) == len(x):
                ax.plot(x, c["values"], marker="o", markersize=2, label=c["label"])
        ax.axhline(threshold, color="0.4", linestyle="--", linewidth=1, label="threshold")
        ax.set_xlabel(f"pixels {'removed' if mode == 'deletion' else 'revealed'} (%)")
        ax.set_ylabel("distance of the pair")
        ax.set_title(mode, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path.name


__all__ = ["COLORMAP", "PHOTO_SIDE", "colorbar", "curves_png", "gray", "heat_rgb", "masked",
           "photo_with_box", "save_png"]

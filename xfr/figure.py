"""The PNG figure of an :class:`~xfr.explanation.Explanation` (``Explanation.save``).

Rows: probe, gallery. Columns: the photo with the detected face box (when the explanation
names a photo file that is still there and the face was found in it), the aligned face, its
attention map, its Otsu mask with the
chosen strategy's mask outlined, and the final heatmap overlaid on the face's luminance, with a
colour bar. A caption gives the input file names, the decision in words ("same person" /
"different person"), distance, threshold, the chosen strategy and every candidate's score (or
why it was not eligible), and a legend of its terms.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xfr.interfaces.vocabulary import POSITIVE, is_positive
from xfr.overlay import overlay

if TYPE_CHECKING:
    from xfr.explanation import Explanation


#: The legend of the caption's terms (paper Sec. 3.2-3.3, eq. 1-2).
LEGEND = ("* = the chosen strategy; RA = removed area (fraction of the image removed from both "
          "faces); score = SM+ (eq. 1, positive) or SM- (eq. 2, negative)")


def _verdict(e: Explanation) -> str:
    return "same person" if e.decision == POSITIVE else "different person"


def _input_names(e: Explanation) -> str | None:
    inputs = e.notes.get("inputs") if isinstance(e.notes, dict) else None
    if not isinstance(inputs, dict):
        return None
    names = [Path(str(inputs[k])).name for k in ("probe", "gallery") if k in inputs]
    return " vs ".join(names) if names else None


def _photos(e: Explanation) -> list[tuple[np.ndarray, dict[str, int]] | None]:
    """Per row (probe, gallery): the original photo and the face box it was aligned from, or
    ``None`` when the input was an aligned crop or an array, or its file is gone."""
    notes = e.notes if isinstance(e.notes, dict) else {}
    inputs, faces = notes.get("inputs"), notes.get("faces")
    if not isinstance(inputs, dict) or not isinstance(faces, dict):
        return [None, None]
    from xfr.align import load_image
    from xfr.errors import InputError

    out: list[tuple[np.ndarray, dict[str, int]] | None] = []
    for side in ("probe", "gallery"):
        box, path = faces.get(side), inputs.get(side)
        if not isinstance(box, dict) or not isinstance(path, str) or not Path(path).is_file():
            out.append(None)
            continue
        try:
            out.append((load_image(path), box))
        except InputError:  # replaced by something unreadable since the explanation
            out.append(None)
    return out


def caption(e: Explanation) -> str:
    rel = "<" if is_positive(e.distance, e.threshold) else ">="
    head = (f"{e.method}: {_verdict(e)} ({e.decision} decision; "
            f"distance {e.distance:.4f} {rel} threshold {e.threshold:.4f})")
    lines = [head]
    names = _input_names(e)
    if names:
        lines.insert(0, names)
    if e.candidates:
        parts = []
        for c in e.candidates:
            mark = "*" if c.name == e.strategy else ""
            if c.score is not None:
                parts.append(f"{c.name}{mark}: score {c.score:.3f}, RA {c.removed_area:.3f}")
            else:
                parts.append(f"{c.name}: not eligible ({c.reason})")
        lines.append("; ".join(parts))
    if e.strategy is None and e.selection_reason:
        lines.append(e.selection_reason)
    if e.heatmaps is None and "unsupported" in e.notes:
        lines.append(str(e.notes["unsupported"]))
    if e.candidates:
        lines.append(LEGEND)
    return "\n".join(lines)


def render_figure(e: Explanation, path: str | Path, dpi: int = 110) -> Path:
    """Write the figure as PNG to ``path`` (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    if e.faces is None:
        raise ValueError("the explanation has no faces to draw (Explanation.faces is None)")
    photos = _photos(e)
    cols = ["photo (face box)"] if any(photos) else []
    cols.append("aligned face")
    if e.attention_maps is not None:
        cols.append("attention map")
    if e.masks is not None:
        cols.append("Otsu mask / chosen mask")
    cols.append("heatmap")
    fig = Figure(figsize=(2.2 * len(cols), 5.2), dpi=dpi)
    axes = fig.subplots(2, len(cols), squeeze=False)
    chosen = None
    if e.strategy is not None:
        try:
            chosen = e.candidate(e.strategy).mask
        except KeyError:
            chosen = None
    for row, label in enumerate(("probe", "gallery")):
        face = e.faces[row]
        for col, what in enumerate(cols):
            ax = axes[row][col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(label)
            if what.startswith("photo"):
                _draw_photo(ax, photos[row])
            elif what == "aligned face":
                ax.imshow(face)
            elif what == "attention map":
                ax.imshow(e.attention_maps[row], cmap="jet", vmin=0, vmax=1)  # type: ignore[index]
            elif what.startswith("Otsu"):
                ax.imshow(e.masks[row], cmap="gray", vmin=0, vmax=1)  # type: ignore[index]
                if chosen is not None and chosen.any():
                    ax.contour(chosen.astype(float), levels=[0.5], colors="red", linewidths=1)
            else:
                if e.heatmaps is not None:
                    ax.imshow(overlay(face, e.heatmaps[row]))
                else:
                    ax.imshow(face, alpha=0.4)
                    ax.text(0.5, 0.5, "no heatmap", ha="center", va="center",
                            transform=ax.transAxes)
            if row == 0:
                ax.set_title(what, fontsize=8)
    fig.suptitle(caption(e), fontsize=7)
    fig.subplots_adjust(left=0.05, right=0.92, bottom=0.02, top=0.82, wspace=0.06, hspace=0.06)
    if e.heatmaps is not None or e.attention_maps is not None:
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        bar = fig.add_axes((0.935, 0.1, 0.015, 0.65))
        colours = ScalarMappable(norm=Normalize(0, 1), cmap="jet")
        fig.colorbar(colours, cax=bar).set_label("importance (0 = least, 1 = most)", fontsize=7)
        bar.tick_params(labelsize=6)
    out = Path(path)
    fig.savefig(out, format="png")
    return out


def _draw_photo(ax: Any, photo: tuple[np.ndarray, dict[str, int]] | None) -> None:
    """The original photo with the detected face's box, or a note why there is none."""
    if photo is None:
        ax.text(0.5, 0.5, "aligned crop\n(no photo)", ha="center", va="center", fontsize=7,
                transform=ax.transAxes)
        return
    from matplotlib.patches import Rectangle

    image, box = photo
    ax.imshow(image)
    ax.add_patch(Rectangle((box["x"], box["y"]), box["width"], box["height"], fill=False,
                           edgecolor="lime", linewidth=1.5))


def heatmap_png(e: Explanation) -> list[np.ndarray]:
    """The two overlays as uint8 arrays (for apps that draw their own figure)."""
    if e.heatmaps is None or e.faces is None:
        return []
    return [overlay(e.faces[i], e.heatmaps[i]) for i in range(2)]

"""The options of the built-in attention generators (paper Sec. 3.1), each declared once
(:mod:`xfr.options`; ``xfr plugins --options NAME``). Imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, get_args

from xfr.options import Options, option

__all__ = [
    "HEAD_FUSIONS",
    "PAPER_ALPHA",
    "PRECISIONS",
    "START",
    "VARIANTS",
    "GeneratorOptions",
    "GradRolloutOptions",
    "HeadFusion",
    "NoGradLRPOptions",
    "Precision",
    "RawAttentionOptions",
    "RelevanceOptions",
    "RolloutOptions",
    "Start",
    "Variant",
    "ViTLRPOptions",
]

#: How the heads of a block are fused: their mean, max or min.
HeadFusion = Literal["mean", "max", "min"]
HEAD_FUSIONS: tuple[str, ...] = get_args(HeadFusion)
#: Whose rollout: the paper's authors' (discard the lowest 90 %, no row normalisation) or
#: Abnar & Zuidema's ((A + I) / 2, row-normalised); docs/method.md, "Rollout".
Variant = Literal["authors", "abnar"]
VARIANTS: tuple[str, ...] = get_args(Variant)
#: ``"model"`` computes in the model's own dtype, ``"float64"`` in a float64 copy of the
#: verifier (docs/method.md, "Precision").
Precision = Literal["model", "float64"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
#: How the relevance starts: ``"unit"`` = one-hot 1 on the target (Chefer et al.'s code, which
#: the paper's authors ran); ``"score"`` = the target score itself, so that relevance totals
#: are in the score's units.
Start = Literal["unit", "score"]
START: tuple[str, ...] = get_args(Start)
#: The alpha of the alpha-beta rule as the paper's authors ran it (docs/method.md, "LRP rules");
#: Chefer et al.'s own default is 1.
PAPER_ALPHA = 0.5


def _workers_option() -> int:
    """``workers`` of the generators that compute in float64 (``grad-rollout``, the LRP ones)."""
    value: int = option(
        0, help="on the CPU in float64: chunks computed side by side, each on one torch thread "
        "(0: as many as torch's threads, which are set to 1 for the call and restored; 1: one "
        "chunk at a time on all of them); never the result (docs/design.md, \"Speed\")", low=0)
    return value


@dataclass(frozen=True)
class GeneratorOptions(Options):
    """What every built-in generator takes."""

    batch_size: int = option(8, help="images per model pass (memory; never the result)", low=1)


@dataclass(frozen=True)
class RawAttentionOptions(GeneratorOptions):
    """``attention``: the CLS row of one block's attention."""

    owner: ClassVar[str] = "attention"

    block: int = option(-1, help="the block (Python index; -1: the last)")
    head_fusion: HeadFusion = option("mean", help="how the heads are fused")


@dataclass(frozen=True)
class RolloutOptions(GeneratorOptions):
    """``rollout``: attention rollout (docs/method.md, "Rollout")."""

    owner: ClassVar[str] = "rollout"

    variant: Variant = option("authors", help="authors: the paper's authors' rollout; abnar: "
                              "Abnar & Zuidema's")
    discard_ratio: float | None = option(
        None, help="share of the lowest entries of each fused matrix set to 0; None: 0.9 "
        "(authors), 0 (abnar)", low=0, high=1, high_open=True)
    head_fusion: HeadFusion = option("mean", help="how the heads are fused")
    discard_cls: bool = option(False, help="whether the CLS->CLS entry may be discarded too "
                               "(the authors' code keeps it)")


@dataclass(frozen=True)
class GradRolloutOptions(GeneratorOptions):
    """``grad-rollout``: gradient-weighted rollout."""

    owner: ClassVar[str] = "grad-rollout"

    discard_ratio: float = option(0.0, help="share of the lowest entries of each weighted "
                                  "matrix set to 0", low=0, high=1, high_open=True)
    precision: Precision = option(
        "float64", help="float64: forward and gradients in a float64 copy of the verifier, so "
        "the maps do not depend on the batch or the thread count (docs/method.md, "
        "\"Precision\"); model: the model's dtype")
    workers: int = _workers_option()


@dataclass(frozen=True)
class RelevanceOptions(GeneratorOptions):
    """The LRP generators (docs/method.md, "ViT-LRP and No-Grad ViT-LRP")."""

    batch_size: int = option(4, help="images per model pass (memory; never the result); 4: "
                             "the fastest measured in float64 on 2 CPU cores (No-Grad "
                             "ViT-LRP 43 ms per face against 52 at 8)", low=1)
    alpha: float = option(PAPER_ALPHA, help="alpha of the alpha-beta rule (beta = alpha - 1); "
                          "the paper's authors ran 0.5, Chefer et al. 1", low=0, low_open=True)
    start: Start = option("unit", help="unit: one-hot 1 on the target (Chefer et al.); score: "
                          "the target score itself")
    precision: Precision = option(
        "float64", help="float64: compute in a float64 copy of the verifier (relevance cancels "
        "large terms); model: the model's dtype")
    workers: int = _workers_option()


@dataclass(frozen=True)
class ViTLRPOptions(RelevanceOptions):
    """``vit-lrp``: transformer attribution."""

    owner: ClassVar[str] = "vit-lrp"


@dataclass(frozen=True)
class NoGradLRPOptions(RelevanceOptions):
    """``nograd-lrp``: transformer attribution without gradients (the paper's best)."""

    owner: ClassVar[str] = "nograd-lrp"

"""The paper's explainer is given its parts (issue 17; docs/design.md, "The paper explainer";
docs/hooks.md, "Factories that build their parts"), and reads as the steps of Sec. 3: decide ->
attend -> candidates -> select -> smooth, each tested here on its own. Real LFW faces, the
bundled default model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import torch
import xfr_plugins.explainers
from xfr_plugins.explainers.paper import PaperExplainer, Smoothing

import xfr
import xfr.registry
from xfr import kernels, registry
from xfr.api import prepare, to_tensor
from xfr.errors import OptionError, OptionTypeError, PluginOutputError, UnknownNameError
from xfr.explanation import Candidate
from xfr.interfaces import AttentionGenerator, MaskStrategy, Selector
from xfr.interfaces.selector import Selection
from xfr.interfaces.vocabulary import DECISIONS, NEGATIVE, POSITIVE, is_positive
from xfr.registry import Registry

STAGES = ("embed", "attention", "otsu", "masked_embed", "select", "smooth")


# --- test-only parts: what an embedding application might bring ------------------------------
class Luminance:
    """An attention generator of this test: each face's luminance, min-max normalised."""

    name = "luminance"

    def __call__(self, verifier: Any, images: torch.Tensor, target: str = "auto",
                 reference: torch.Tensor | None = None) -> torch.Tensor:
        y = 0.299 * images[:, 0] + 0.587 * images[:, 1] + 0.114 * images[:, 2]
        lo = y.amin(dim=(1, 2), keepdim=True)
        hi = y.amax(dim=(1, 2), keepdim=True)
        return ((y - lo) / (hi - lo)).float()


class Both:
    """Removes what is salient in both faces (a test's own intersection)."""

    name = "both"
    decisions = frozenset(DECISIONS)

    def combine(self, mask_p: np.ndarray, mask_g: np.ndarray) -> np.ndarray:
        return np.logical_and(mask_p, mask_g)

    def heatmap(self, map_p: np.ndarray, map_g: np.ndarray, mask_p: np.ndarray,
                mask_g: np.ndarray) -> np.ndarray:
        return np.where(self.combine(mask_p, mask_g), (map_p + map_g) / 2, 0).astype(np.float32)


class Either(Both):
    """Removes what is salient in either face; explains negative decisions only."""

    name = "either"
    decisions = frozenset({NEGATIVE})

    def combine(self, mask_p: np.ndarray, mask_g: np.ndarray) -> np.ndarray:
        return np.logical_or(mask_p, mask_g)


class SmallestArea:
    """Chooses the eligible candidate that removes the least."""

    name = "smallest-area"

    def __init__(self, argument: str | None = None) -> None:
        self.argument = argument

    def select(self, decision: str, distance: float,
               candidates: Sequence[Candidate]) -> Selection:
        eligible = [c for c in candidates if c.eligible and c.removed_area > 0]
        for c in candidates:
            c.score = -c.removed_area if c in eligible else None
        if not eligible:
            return Selection(None, "nothing eligible")
        best = min(eligible, key=lambda c: c.removed_area)
        return Selection(best.name, f"smallest area: {best.name}",
                         {c.name: c.score for c in candidates})


class Wrong(SmallestArea):
    """A selector that breaks its contract: it chooses a strategy that is not a candidate."""

    name = "wrong"

    def select(self, decision: str, distance: float,
               candidates: Sequence[Candidate]) -> Selection:
        return Selection("nonexistent", "made up")


class AppParts:
    """The application's plugin: its own generator, masks and selector."""

    @xfr.hookimpl
    def xfr_attention_generators(self) -> dict[str, Any]:
        return {"luminance": Luminance}

    @xfr.hookimpl
    def xfr_mask_strategies(self) -> dict[str, Any]:
        return {"both": Both, "either": Either}

    @xfr.hookimpl
    def xfr_selectors(self) -> dict[str, Any]:
        return {"smallest-area": SmallestArea}


# --- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def faces(lfw_root: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Two real LFW pairs: the same person, then two different people."""
    from xfr.data.lfw import image_folder

    folder = image_folder(lfw_root)
    probes = [folder / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg",
              folder / "Aaron_Peirsol" / "Aaron_Peirsol_0003.jpg"]
    galleries = [folder / "Aaron_Peirsol" / "Aaron_Peirsol_0002.jpg",
                 folder / "Abel_Pacheco" / "Abel_Pacheco_0001.jpg"]
    return (to_tensor(prepare([str(p) for p in probes])),
            to_tensor(prepare([str(p) for p in galleries])))


@pytest.fixture
def isolated() -> Registry:
    """A registry of the application's parts and the built-in explainers' plugin only."""
    reg = Registry(load_entry_points=False)
    reg.register(AppParts(), name="app")
    reg.register(xfr_plugins.explainers, name="explainers")
    return reg


@pytest.fixture
def no_global_builtins(monkeypatch: pytest.MonkeyPatch) -> Registry:
    """The process-wide registry replaced by an empty one: reaching for a built-in there
    fails."""
    empty = Registry(load_entry_points=False)
    monkeypatch.setattr(xfr.registry, "_default", empty)
    return empty


# --- parts are handed in -------------------------------------------------------------------------
def test_an_application_builds_a_whole_explainer_from_its_own_registry(
        isolated: Registry, no_global_builtins: Registry, default_verifier: Any,
        faces: tuple[torch.Tensor, torch.Tensor]) -> None:
    explainer = isolated.create("explainer", "paper", generator="luminance",
                                strategies={"positive": "both", "negative": "both,either"},
                                selector="smallest-area")
    assert isinstance(explainer.generator, Luminance)
    assert isinstance(explainer.selector, SmallestArea)
    assert explainer.registry is isolated
    assert {d: list(s) for d, s in explainer.strategies.items()} == {
        POSITIVE: ["both"], NEGATIVE: ["both", "either"]}
    assert registry.names("attention") == []  # nothing came from the process-wide registry

    probes, galleries = faces
    results = explainer.explain_pairs(default_verifier, probes, galleries)
    assert [e.decision for e in results] == [POSITIVE, NEGATIVE]
    luminance = Luminance()(default_verifier, torch.cat([probes, galleries])).numpy()
    for i, e in enumerate(results):
        assert is_positive(e.distance, e.threshold) == (e.decision == POSITIVE)
        np.testing.assert_array_equal(e.attention_maps, luminance[[i, 2 + i]])
        assert e.notes["generator"] == "luminance" and e.notes["selector"] == "smallest-area"
        eligible = [c for c in e.candidates if c.eligible and c.removed_area > 0]
        assert e.strategy == min(eligible, key=lambda c: c.removed_area).name
        assert e.selection_reason == f"smallest area: {e.strategy}"
        assert e.heatmaps is not None and e.heatmaps.shape == (2, 112, 112)
    assert [c.name for c in results[1].candidates] == ["both", "either"]


def test_the_defaults_are_looked_up_in_the_explainer_s_registry_not_the_process_wide_one(
        isolated: Registry, no_global_builtins: Registry) -> None:
    # the default generator, nograd-lrp, is a built-in: this registry does not have it
    with pytest.raises(UnknownNameError, match="unknown attention 'nograd-lrp'; known "
                       "attention names: luminance$"):
        isolated.create("explainer", "paper")
    with pytest.raises(UnknownNameError, match="unknown mask 'oim'; known mask names: both, "
                       "either"):
        isolated.create("explainer", "paper", generator="luminance")
    with pytest.raises(UnknownNameError, match="unknown selector 'metric'"):
        isolated.create("explainer", "paper", generator="luminance", strategies="both")
    # per-call options resolve names in the same registry
    explainer = isolated.create("explainer", "paper", generator="luminance", strategies="both",
                                selector="smallest-area")
    with pytest.raises(UnknownNameError, match="unknown attention 'rollout'"):
        explainer.with_options(generator="rollout")


def test_the_relevance_explainer_builds_its_generator_in_its_registry(
        isolated: Registry, no_global_builtins: Registry, default_verifier: Any,
        faces: tuple[torch.Tensor, torch.Tensor]) -> None:
    # its default generator, grad-rollout, is a built-in: this registry does not have it
    with pytest.raises(UnknownNameError, match="unknown attention 'grad-rollout'; known "
                       "attention names: luminance$"):
        isolated.create("explainer", "relevance")
    explainer = isolated.create("explainer", "relevance", generator="luminance")
    assert explainer.registry is isolated
    probes, galleries = faces
    results = explainer.explain_pairs(default_verifier, probes, galleries)
    luminance = Luminance()(default_verifier, torch.cat([probes, galleries])).numpy()
    for i, e in enumerate(results):
        np.testing.assert_array_equal(e.attention_maps, luminance[[i, 2 + i]])
        assert e.notes["generator"] == "luminance"
    assert registry.names("attention") == []  # nothing came from the process-wide registry
    with pytest.raises(UnknownNameError, match="unknown attention 'rollout'"):
        explainer.explain_pairs(default_verifier, probes, galleries, generator="rollout")


def test_the_registry_passes_itself_only_to_factories_that_ask_for_it() -> None:
    seen: dict[str, Any] = {}

    def asks(*, registry: Registry, colour: str = "red") -> str:
        seen["registry"] = registry
        return colour

    def does_not_ask(**options: Any) -> dict[str, Any]:
        return options

    class Plugin:
        @xfr.hookimpl
        def xfr_selectors(self) -> dict[str, Any]:
            return {"asks": asks, "does-not-ask": does_not_ask}

    reg = Registry(load_entry_points=False)
    reg.register(Plugin())
    assert reg.create("selector", "asks", colour="blue") == "blue"
    assert seen["registry"] is reg
    assert reg.create("selector", "does-not-ask", colour="blue") == {"colour": "blue"}
    assert xfr.registry.takes_registry(asks) and not xfr.registry.takes_registry(does_not_ask)
    with pytest.raises(OptionTypeError, match="'registry' is not an option"):
        reg.create("selector", "does-not-ask", registry=reg)
    with pytest.raises(OptionTypeError, match=r"cannot be built with options size: .*'size'"):
        reg.create("selector", "asks", size=3)


def test_an_explainer_can_be_given_ready_objects(default_verifier: Any,
                                                 faces: tuple[torch.Tensor, torch.Tensor]) -> None:
    both, either = Both(), Either()
    explainer = PaperExplainer(Luminance(), {POSITIVE: {"both": both},
                                             NEGATIVE: {"both": both, "either": either}},
                               SmallestArea(), Smoothing(dilate_size=4), fill="mean")
    assert isinstance(explainer.generator, AttentionGenerator)
    assert isinstance(both, MaskStrategy) and isinstance(explainer.selector, Selector)
    assert explainer.registry is None
    assert explainer.options["generator"] == "luminance"
    assert explainer.options["strategies"] == {POSITIVE: ("both",), NEGATIVE: ("both", "either")}
    [e] = explainer.explain_pairs(default_verifier, faces[0][:1], faces[1][:1])
    assert e.notes["smoothing"]["dilate_size"] == 4 and e.notes["fill"] == "mean"
    # per call: what is not a part may change; a part needs a registry to be built from
    [wide] = explainer.explain_pairs(default_verifier, faces[0][:1], faces[1][:1],
                                     dilate_size=12)
    assert wide.notes["smoothing"]["dilate_size"] == 12
    with pytest.raises(OptionTypeError, match="paper: generator cannot change per call"):
        explainer.explain_pairs(default_verifier, faces[0][:1], faces[1][:1],
                                generator="rollout")
    with pytest.raises(OptionError, match="strategies must map both 'positive' and 'negative'"):
        PaperExplainer(Luminance(), {POSITIVE: {"both": both}}, SmallestArea())
    with pytest.raises(OptionError, match="paper: fill must be one of"):
        PaperExplainer(Luminance(), explainer.strategies, SmallestArea(), fill="grey")  # type: ignore[arg-type]


# --- the steps of Sec. 3, each on its own ---------------------------------------------------------
@pytest.fixture(scope="module")
def paper(default_verifier: Any) -> PaperExplainer:
    return registry.create("explainer", "paper", generator="rollout")


def test_decide_embeds_both_faces_once_and_applies_the_threshold(
        paper: PaperExplainer, default_verifier: Any,
        faces: tuple[torch.Tensor, torch.Tensor]) -> None:
    probes, galleries = faces
    decided = paper.decide(default_verifier, probes, galleries)
    assert decided.n == 2 and decided.faces.shape == (4, 3, 112, 112)
    expected = default_verifier.embed(torch.cat([probes, galleries]))
    torch.testing.assert_close(decided.embeddings, expected)
    d = default_verifier.distance(expected[:2], expected[2:]).double().numpy()
    np.testing.assert_allclose(decided.distances, d)
    assert decided.threshold == default_verifier.threshold
    assert decided.decisions == [POSITIVE if x < decided.threshold else NEGATIVE for x in d]


def test_attend_gives_one_map_and_one_otsu_mask_per_face(
        paper: PaperExplainer, default_verifier: Any,
        faces: tuple[torch.Tensor, torch.Tensor]) -> None:
    decided = paper.decide(default_verifier, *faces)
    attended = paper.attend(default_verifier, decided)
    maps = registry.create("attention", "rollout")(default_verifier, decided.faces).numpy()
    np.testing.assert_array_equal(attended.maps, maps)
    np.testing.assert_array_equal(attended.masks, kernels.otsu(maps)[1])
    assert attended.masks.dtype == np.bool_ and attended.target in ("logit", "embedding")
    map_p, map_g, mask_p, mask_g = attended.pair(1, decided.n)
    np.testing.assert_array_equal(map_g, maps[3])
    np.testing.assert_array_equal(mask_p, attended.masks[1])


def test_candidates_remove_each_strategy_s_mask_from_both_faces(
        paper: PaperExplainer, default_verifier: Any,
        faces: tuple[torch.Tensor, torch.Tensor]) -> None:
    decided = paper.decide(default_verifier, *faces)
    attended = paper.attend(default_verifier, decided)
    rows = paper.candidates(default_verifier, decided, attended)
    assert [[c.name for c in row] for row in rows] == [["oim", "um"], ["oim", "um", "nium"]]
    assert [sorted(c.distances) for c in rows[0]] == [["pg", "pp"]] * 2
    assert [sorted(c.distances) for c in rows[1]] == [["npg"]] * 3
    # the negative pair's N-IUM candidate, by hand: XOR of the Otsu masks, zeros in both faces
    nium = rows[1][2]
    expected = np.logical_xor(attended.masks[1], attended.masks[3])
    np.testing.assert_array_equal(nium.mask, expected)
    assert nium.removed_area == pytest.approx(expected.mean())
    keep = torch.from_numpy(~expected).float()
    masked = default_verifier.embed(decided.faces[[1, 3]] * keep)
    assert nium.distances["npg"] == pytest.approx(
        float(default_verifier.distance(masked[:1], masked[1:])[0]), rel=1e-5, abs=1e-6)
    assert all(c.eligible for c in rows[1])


def test_select_asks_the_selector_and_refuses_a_choice_outside_the_candidates(
        paper: PaperExplainer, default_verifier: Any,
        faces: tuple[torch.Tensor, torch.Tensor]) -> None:
    decided = paper.decide(default_verifier, *faces)
    rows = paper.candidates(default_verifier, decided, paper.attend(default_verifier, decided))
    selection = paper.select(decided, 0, rows[0])
    scores = {c.name: c.score for c in rows[0]}
    assert selection.strategy == max((s for s in scores if scores[s] is not None),
                                     key=lambda s: scores[s])  # type: ignore[arg-type,return-value]
    wrong = PaperExplainer(paper.generator, paper.strategies, Wrong())
    with pytest.raises(PluginOutputError, match="selector 'wrong': chose 'nonexistent', which "
                       r"is not among the candidates \(oim, um\)"):
        wrong.select(decided, 0, rows[0])


def test_smooth_is_the_chosen_strategy_s_heatmap_dilated_and_blurred(
        paper: PaperExplainer, default_verifier: Any,
        faces: tuple[torch.Tensor, torch.Tensor]) -> None:
    decided = paper.decide(default_verifier, *faces)
    attended = paper.attend(default_verifier, decided)
    pair = attended.pair(0, decided.n)
    heatmaps = paper.smooth("um", pair)
    assert heatmaps is not None and heatmaps.shape == (2, 112, 112)
    raw = kernels.combine_maps(*pair, "or")
    expected = kernels.smooth_heatmap(raw, dilate_size=8, gaussian_size=56, sigma=56 / 8.5,
                                      centre="authors")
    np.testing.assert_array_equal(heatmaps[0], expected)
    np.testing.assert_array_equal(heatmaps[1], expected)
    assert paper.smooth(None, pair) is None


def test_each_stage_is_timed_and_the_steps_give_what_explain_pairs_gives(
        paper: PaperExplainer, default_verifier: Any,
        faces: tuple[torch.Tensor, torch.Tensor]) -> None:
    results = paper.explain_pairs(default_verifier, *faces)
    split = results[0].notes["seconds_per_pair"]
    assert list(split) == list(STAGES) and all(v >= 0 for v in split.values())
    decided = paper.decide(default_verifier, *faces)
    attended = paper.attend(default_verifier, decided)
    rows = paper.candidates(default_verifier, decided, attended)
    for i, e in enumerate(results):
        selection = paper.select(decided, i, rows[i])
        assert selection.strategy == e.strategy
        np.testing.assert_array_equal(paper.smooth(selection.strategy,  # type: ignore[arg-type]
                                                   attended.pair(i, 2)), e.heatmaps)

"""The paper's vocabulary is defined once (:mod:`xfr.interfaces.vocabulary`) and used everywhere:
the decision rule (Sec. 3.1), the mask strategies and their decisions (Sec. 3.2-3.3), the
smoothing constants (Sec. 3.1); and the package's version and ``Factory`` are written once.

The "written once" checks read the source with :mod:`ast` (code only, never comments or
docstrings) and are shown to catch what they look for on small samples first."""

from __future__ import annotations

import ast
import importlib.metadata
import inspect
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import xfr
from xfr import kernels, registry
from xfr.interfaces import vocabulary
from xfr.interfaces.vocabulary import (
    DECISIONS,
    NEGATIVE,
    PAPER_STRATEGIES,
    POSITIVE,
    decide,
    is_positive,
    paper_strategies,
    strategy_label,
)

ROOT = Path(__file__).resolve().parent.parent
VOCABULARY = ROOT / "xfr" / "interfaces" / "vocabulary.py"
#: Names a decision threshold goes by in the code.
THRESHOLD_NAMES = {"threshold", "thresholds", "thr", "th"}
STRATEGY_NAMES = {"oim", "um", "nium"}


def sources(*folders: str) -> Iterator[tuple[Path, ast.Module]]:
    """Every Python file of the package's source folders (the vocabulary itself excluded)."""
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path != VOCABULARY:
                yield path, ast.parse(path.read_text(), str(path))


CODE = ("xfr", "plugins", "reports")


# ------------------------------------------------------------------------------ the rule


@pytest.mark.parametrize(("distance", "threshold", "decision"), [
    (0.5, 1.0, POSITIVE), (1.0, 1.0, NEGATIVE), (1.5, 1.0, NEGATIVE), (0.0, 1e-9, POSITIVE),
    (float("nan"), 1.0, NEGATIVE), (np.float64(0.25), 0.3, POSITIVE),
])
def test_decide_is_positive_below_the_threshold_only(distance, threshold, decision) -> None:
    assert decide(distance, threshold) == decision
    assert bool(is_positive(distance, threshold)) == (decision == POSITIVE)


def test_is_positive_works_elementwise_on_arrays_and_tensors() -> None:
    d = np.array([0.1, 0.9, 1.0, 1.1, np.nan])
    expected = [decide(float(x), 1.0) == POSITIVE for x in d]
    np.testing.assert_array_equal(is_positive(d, 1.0), expected)
    assert is_positive(torch.from_numpy(d), 1.0).tolist() == expected
    # thresholds that broadcast, as the threshold search of the LFW protocol uses them
    grid = is_positive(d[None, :], np.array([0.5, 1.05])[:, None])
    assert grid.shape == (2, 5) and grid.tolist() == [
        [True, False, False, False, False], [True, True, True, False, False]]


def rule_statements(tree: ast.AST) -> list[int]:
    """Lines that write the decision rule: a distance compared with a threshold (not a
    threshold checked against a number), or ``"positive" if a < b else "negative"``."""

    def threshold_like(node: ast.AST) -> bool:
        while isinstance(node, ast.Subscript):
            node = node.value
        name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
        return name in THRESHOLD_NAMES

    def number(node: ast.AST) -> bool:
        if isinstance(node, ast.UnaryOp):
            node = node.operand
        return isinstance(node, ast.Constant) and isinstance(node.value, (int, float))

    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for op, left, right in zip(node.ops, operands[:-1], operands[1:], strict=True):
                if not isinstance(op, (ast.Lt, ast.LtE, ast.Gt, ast.GtE)):
                    continue
                if (threshold_like(left) or threshold_like(right)) and not (
                        number(left) or number(right)):
                    lines.append(node.lineno)
        elif isinstance(node, ast.IfExp) and isinstance(node.test, ast.Compare) and any(
                isinstance(op, (ast.Lt, ast.LtE, ast.Gt, ast.GtE)) for op in node.test.ops):
            words = {getattr(node.body, "value", None), getattr(node.orelse, "value", None)}
            if words == {POSITIVE, NEGATIVE}:
                lines.append(node.lineno)
    return sorted(set(lines))


def test_the_rule_finder_finds_the_rule_and_nothing_else() -> None:
    written = """
a = "positive" if d < threshold else "negative"
b = distances[None, :] < thresholds[:, None]
c = np.mean(d[~s] >= threshold)
e = dist_np[i] < self.thr
f = x.distance < th
g = "negative" if dist >= t else "positive"
"""
    assert rule_statements(ast.parse(written)) == [2, 3, 4, 5, 6, 7]
    not_the_rule = """
if not threshold > 0: pass
ok = 0 < threshold < 4
g = -1 < th
h = is_positive(d, threshold)
k = "same person" if e.decision == "positive" else "different person"
m = f"should be {'positive' if positive else 'negative'}"
"""
    assert rule_statements(ast.parse(not_the_rule)) == []


def test_the_decision_rule_is_written_only_in_the_vocabulary() -> None:
    found = [f"{path.relative_to(ROOT)}:{line}" for path, tree in sources(*CODE)
             for line in rule_statements(tree)]
    assert found == [], "use xfr.interfaces.vocabulary.decide / is_positive instead"
    assert rule_statements(ast.parse(VOCABULARY.read_text())) != []  # it is written there


# ------------------------------------------------------------------------------ strategies


def test_the_paper_strategies_and_their_decisions() -> None:
    assert list(PAPER_STRATEGIES) == ["oim", "um", "nium"]
    assert [s.label for s in PAPER_STRATEGIES.values()] == ["OIM", "UM", "N-IUM"]
    assert paper_strategies(POSITIVE) == ("oim", "um")
    assert paper_strategies(NEGATIVE) == ("oim", "um", "nium")
    assert strategy_label("nium") == "N-IUM" and strategy_label("probe-only") == "probe-only"
    with pytest.raises(ValueError, match="decision"):
        paper_strategies("neutral")


def test_the_registered_strategies_declare_the_vocabulary_s_decisions() -> None:
    for s in PAPER_STRATEGIES.values():
        built = registry.create("mask", s.name)
        assert built.name == s.name and built.decisions == s.decisions


def test_every_list_of_strategies_comes_from_the_vocabulary() -> None:
    from xfr_plugins.explainers.paper import DEFAULT_STRATEGIES, PaperExplainer
    from xfr_plugins.selectors.fixed import FixedSelector
    from xfr_plugins.selectors.metric import PAPER_DECISIONS

    from xfr.evaluation.table1 import STRATEGIES

    by_decision = {d: paper_strategies(d) for d in DECISIONS}
    assert STRATEGIES == DEFAULT_STRATEGIES == by_decision
    assert {s.name: s.decisions for s in PAPER_STRATEGIES.values()} == PAPER_DECISIONS
    assert FixedSelector().strategy == vocabulary.BEST_STRATEGY == "oim"
    assert PaperExplainer().options["strategies"] is None  # None: the defaults above


def hard_coded_strategies(tree: ast.AST) -> list[int]:
    """Lines with a list, tuple, set or dict (keys) of two or more strategy names."""
    lines = []
    for node in ast.walk(tree):
        items = (node.keys if isinstance(node, ast.Dict)
                 else node.elts if isinstance(node, (ast.List, ast.Tuple, ast.Set)) else [])
        names = {getattr(k, "value", None) for k in items} & STRATEGY_NAMES
        if len(names) >= 2:
            lines.append(node.lineno)
    return lines


def test_no_hard_coded_list_of_strategies_outside_the_vocabulary() -> None:
    assert hard_coded_strategies(ast.parse('A = ("oim", "um")\nB = {"oim": 1, "nium": 2}')) == [
        1, 2]
    found = [f"{path.relative_to(ROOT)}:{line}" for path, tree in sources("xfr", "plugins")
             for line in hard_coded_strategies(tree)]
    assert found == []


def test_the_kernels_know_set_operations_not_strategies() -> None:
    strings = {n.value for path in sorted((ROOT / "xfr" / "kernels").glob("*.py"))
               for n in ast.walk(ast.parse(path.read_text()))
               if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert not strings & STRATEGY_NAMES
    assert not hasattr(kernels, "strategy_heatmap")
    csrc = "\n".join(p.read_text() for p in sorted((ROOT / "csrc").glob("*.*pp")))
    for word in ("Strategy", "Oim", "Nium", '"oim"', '"um"', '"nium"'):
        assert word not in csrc


# ------------------------------------------------------------------------------ smoothing


def test_the_smoothing_constants_are_the_paper_s() -> None:
    assert (vocabulary.DILATE_SIZE, vocabulary.GAUSSIAN_SIZE) == (8, 56)
    assert vocabulary.GAUSSIAN_SIGMA == 56 / 8.5 and math.isclose(vocabulary.GAUSSIAN_SIGMA, 6.59,
                                                                   abs_tol=5e-3)
    assert kernels.PAPER_DILATE_SIZE == vocabulary.DILATE_SIZE
    assert kernels.PAPER_GAUSSIAN_SIZE == vocabulary.GAUSSIAN_SIZE
    assert kernels.PAPER_SIGMA == vocabulary.GAUSSIAN_SIGMA


def test_the_paper_explainer_and_the_kernels_default_to_the_same_smoothing() -> None:
    from xfr_plugins.explainers.paper import PaperExplainer

    opts = PaperExplainer().options
    smooth = inspect.signature(kernels.smooth_heatmap).parameters
    assert (opts["dilate_size"], opts["gaussian_size"], opts["sigma"]) == (
        smooth["dilate_size"].default, smooth["gaussian_size"].default, smooth["sigma"].default)
    assert inspect.signature(kernels.dilate).parameters["size"].default == (8, 8)
    assert inspect.signature(kernels.gaussian).parameters["size"].default == 56


def test_no_smoothing_constant_is_written_twice() -> None:
    found = []
    for path, tree in sources("xfr", "plugins"):
        for node in ast.walk(tree):
            if (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)
                    and getattr(node.right, "value", None) == 8.5):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


# ------------------------------------------------------------------------------ re-exports


def test_xfr_interfaces_re_exports_the_vocabulary() -> None:
    import xfr.interfaces as interfaces

    for name in vocabulary.__all__:
        assert getattr(interfaces, name) is getattr(vocabulary, name), name
        assert name in interfaces.__all__
    from xfr.interfaces.mask_strategy import Decision

    assert Decision is vocabulary.Decision


# ------------------------------------------------------------------------------ written once


def test_the_version_comes_from_the_package_metadata() -> None:
    assert xfr.__version__ == importlib.metadata.version("xfr")
    tree = ast.parse((ROOT / "xfr" / "__init__.py").read_text())
    assigned = [t.id for n in ast.walk(tree) if isinstance(n, ast.Assign)
                for t in n.targets if isinstance(t, ast.Name)]
    assert "__version__" not in assigned


def test_factory_is_defined_once() -> None:
    from xfr import hookspecs

    assert registry.Factory is hookspecs.Factory
    defined = [f"{path.relative_to(ROOT)}" for path, tree in sources("xfr", "plugins")
               for n in ast.walk(tree) if isinstance(n, (ast.Assign, ast.AnnAssign))
               for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
               if isinstance(t, ast.Name) and t.id == "Factory"]
    assert defined == ["xfr/hookspecs.py"]

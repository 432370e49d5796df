"""The hooks a plugin implements, one per kind of component (pluggy project name ``xfr``).

Each hook returns a mapping from a public name to a factory; the registry
(:mod:`xfr.registry`) calls each plugin's implementation on its own, so that it knows which
package provides which name. A plugin module is announced in its package's metadata::

    [project.entry-points.xfr]
    my_plugin = "my_package.xfr_plugin"

and marks its functions with :data:`xfr.hookimpl`.

Factory conventions, by kind (``spec`` is ``"name"`` or ``"name:argument"``):

- ``verifier``: ``factory(source: str | None = None, **options) -> Verifier``
- ``attention``: ``factory(**options) -> AttentionGenerator``
- ``mask``: ``factory(**options) -> MaskStrategy``
- ``selector``: ``factory(argument: str | None = None, **options) -> Selector``
- ``explainer``: ``factory(**options) -> Explainer``
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pluggy

PROJECT_NAME = "xfr"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

#: What a hook maps each name to: a callable that builds the component (conventions above).
Factory = Callable[..., Any]


@hookspec
def xfr_verifiers() -> Mapping[str, Factory]:
    """Register verifiers (kind ``verifier``).

    Return ``{name: factory}``; ``factory(source=None, **options)`` builds a
    :class:`xfr.interfaces.Verifier`, loading weights from ``source`` (a path) when given.
    Example: ``{"face-vit": FaceViTVerifier.load}``.
    """


@hookspec
def xfr_attention_generators() -> Mapping[str, Factory]:
    """Register attention-map generators (kind ``attention``), paper Sec. 3.1.

    Return ``{name: factory}``; ``factory(**options)`` builds a
    :class:`xfr.interfaces.AttentionGenerator`. Example: ``{"rollout": Rollout}``.
    """


@hookspec
def xfr_mask_strategies() -> Mapping[str, Factory]:
    """Register mask strategies (kind ``mask``), paper Sec. 3.2-3.3 (OIM, UM, N-IUM).

    Return ``{name: factory}``; ``factory(**options)`` builds a
    :class:`xfr.interfaces.MaskStrategy`. Example: ``{"oim": IntersectionMask}``.
    """


@hookspec
def xfr_selectors() -> Mapping[str, Factory]:
    """Register mask selectors (kind ``selector``), paper eq. (1) SM+ and eq. (2) SM-.

    Return ``{name: factory}``; ``factory(argument=None, **options)`` builds a
    :class:`xfr.interfaces.Selector`; ``"fixed:oim"`` calls the ``fixed`` factory with
    ``"oim"``.
    """


@hookspec
def xfr_explainers() -> Mapping[str, Factory]:
    """Register whole explainers (kind ``explainer``): the paper's pipeline, MinPlus, RISE...

    Return ``{name: factory}``; ``factory(**options)`` builds a
    :class:`xfr.interfaces.Explainer`.
    """

"""The shared call path of every attention generator (the AttentionGenerator contract,
:mod:`xfr.interfaces.attention`; paper Sec. 3.1, "Attention Map Generation").

A generator subclass computes, for a chunk of images already on the model's device, the CLS
row of its token-to-token matrix over the patch tokens, ``(n, rows*cols)``. This base class
validates the inputs, processes the batch in chunks of ``batch_size`` images (bounded memory,
identical results to one-by-one), leaves the model as it found it, and turns the scores into
``(N, H, W)`` float32 maps in [0, 1] on the images' device (:mod:`maps`).
"""

from __future__ import annotations

import contextlib
import copy
import weakref
from abc import ABC, abstractmethod
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import torch
from torch import nn

from xfr.interfaces.images import check_faces
from xfr_plugins.attention.maps import to_image_maps
from xfr_plugins.attention.options import PRECISIONS, GeneratorOptions
from xfr_plugins.attention.targets import check_reference, check_target
from xfr_plugins.attention.tracing import (
    check_vit_verifier,
    move_to_model,
    patch_embed_in_eval,
)

__all__ = ["PRECISIONS", "AttentionMapGenerator", "float64_twin"]


#: Each verifier's float64 twin, with the state of the verifier it was made from.
_TWINS: weakref.WeakKeyDictionary[Any, tuple[tuple[Any, ...], Any]] = (
    weakref.WeakKeyDictionary())


def _state(verifier: Any) -> tuple[Any, ...]:
    """What a twin must be remade for: every attribute's identity, and every tensor of its
    modules with its storage and in-place version (an optimiser step or ``load_state_dict``
    bumps the version; assigning a new tensor changes the identity)."""
    out: list[Any] = []
    for name, value in vars(verifier).items():
        out.append((name, id(value)))
        if isinstance(value, nn.Module):
            for tensor in (*value.parameters(), *value.buffers()):
                out.append((id(tensor), tensor.data_ptr(), tensor._version))
    return tuple(out)


def float64_twin(verifier: Any) -> Any:
    """A copy of ``verifier`` whose modules compute in float64 (the weights are float32 values,
    which float64 holds exactly), or ``verifier`` itself when it already does. The verifier is
    never modified; a verifier whose modules cannot be found as attributes is returned as is.

    The twin is made once per verifier and reused while the verifier's weights and attributes
    are unchanged (:func:`_state`): a deep copy costs about as much as embedding two faces.
    """
    backbone = verifier.backbone
    param = next(backbone.parameters(), None)
    if param is None or param.dtype == torch.float64:
        return verifier
    state = _state(verifier)
    try:
        cached = _TWINS.get(verifier)
    except TypeError:  # not weakly referable or not hashable: no cache
        cached = None
    if cached is not None and cached[0] == state:
        return cached[1]
    twin = copy.deepcopy(verifier)
    for value in vars(twin).values():
        if isinstance(value, nn.Module):
            value.double()
    twin_param = next(twin.backbone.parameters(), None)
    if twin_param is None or twin_param.dtype != torch.float64:
        return verifier
    with contextlib.suppress(TypeError):
        _TWINS[verifier] = (state, twin)
    return twin


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` for the block, restored after (process-wide:
    torch has no per-thread setting)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class AttentionMapGenerator(ABC):
    """Base of the built-in generators: ``generator(verifier, images, target, reference)``.

    A subclass declares its options (:attr:`Options`, :mod:`xfr_plugins.attention.options`):
    the constructor takes them as keywords, checks them there (``OptionTypeError`` for an
    unknown option or a wrong type, ``OptionError`` for a bad value) and hands them to
    :meth:`configure`.
    """

    name: ClassVar[str]
    #: The options declaration (``xfr plugins --options NAME``).
    Options: ClassVar[type[GeneratorOptions]] = GeneratorOptions
    #: Whether the generator's maps depend on the target (raw attention and rollout do not).
    uses_target: ClassVar[bool] = True

    def __init__(self, **options: Any) -> None:
        checked = self.Options.parse(options)
        self.batch_size = checked.batch_size
        #: ``"model"`` or ``"float64"`` (:data:`PRECISIONS`).
        self.precision: str = getattr(checked, "precision", "model")
        #: chunks side by side in float64 on the CPU (0: torch's threads; :meth:`_workers`)
        self.workers: int = getattr(checked, "workers", 1)
        self.configure(checked)

    def configure(self, options: Any) -> None:  # noqa: B027 - optional, not abstract
        """Keep the subclass's own options (already checked) as attributes."""

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({options})"

    @abstractmethod
    def patch_scores(
        self,
        verifier: Any,
        images: torch.Tensor,
        target: str,
        reference: torch.Tensor | None,
    ) -> torch.Tensor:
        """CLS-row scores ``(n, rows*cols)`` over the patch tokens of ``images`` (model device)."""

    def _workers(self, verifier: Any, images: int) -> int:
        """Chunks computed at once: on the CPU in float64, ``workers`` (0: one per torch
        thread), each chunk on one thread (element-wise work on small tensors gains little from
        a second thread, two chunks side by side about 1.4x; docs/design.md, "Speed"); else one
        at a time. Float64 maps rounded to float32 almost never depend on the threads or the
        chunk size (docs/method.md, "Precision")."""
        if self.precision != "float64" or images < 2 or self.workers == 1:
            return 1
        param = next(verifier.backbone.parameters(), None)
        if param is None or param.device.type != "cpu":
            return 1
        return min(self.workers or torch.get_num_threads(), images)

    def __call__(
        self,
        verifier: Any,
        images: torch.Tensor,
        target: str = "auto",
        reference: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Maps ``(N, H, W)`` in [0, 1], float32, on ``images``' device (see the contract)."""
        backbone = check_vit_verifier(verifier)
        target = check_target(target)
        images = check_faces(images, getattr(verifier, "input_size", None))
        n = images.shape[0]
        ref = check_reference(target, reference, n)
        grid = tuple(int(g) for g in verifier.grid_size)
        # the float64 copy is made outside inference_mode, so that its weights are ordinary
        with torch.inference_mode(False):
            if self.precision == "float64":
                verifier = float64_twin(verifier)
                backbone = verifier.backbone
        workers = self._workers(verifier, n)
        # a batch smaller than the workers' chunks is split so that every worker has one
        size = min(self.batch_size, -(-n // workers))
        starts = range(0, n, size)

        def chunk_scores(start: int) -> torch.Tensor:
            # Runs outside any caller's inference_mode (inference tensors cannot enter autograd;
            # inference_mode(False) also turns autograd on, as a fresh thread has it)
            with torch.inference_mode(False):
                stop = start + size
                chunk = move_to_model(verifier, images[start:stop]).clone()
                chunk_ref = None
                if ref is not None:
                    chunk_ref = ref[start:stop].to(chunk.device).clone()
                return self.patch_scores(verifier, chunk, target, chunk_ref).detach()

        with patch_embed_in_eval(backbone):
            if workers > 1:
                with _torch_threads(1), ThreadPoolExecutor(workers) as pool:
                    out = list(pool.map(chunk_scores, starts))
            else:
                out = [chunk_scores(start) for start in starts]
        scores = torch.cat(out).to(images.device)
        return to_image_maps(scores, (grid[0], grid[1]), (images.shape[-2], images.shape[-1]))

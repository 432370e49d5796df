"""Distillation training of a face verifier (issue "Train and ship the default face ViT").

On each batch, s is the student's embedding and t the teacher's embedding of the same view (the
mirror image's own teacher embedding when the view is flipped and the cache holds one, else the
image's), centred on the teacher's mean embedding and renormalised: learning the raw direction
lets the student settle on the mean face (docs/training.md, "Distillation targets"). The losses:

- cosine: ``1 - cos(s, t)``;
- relational: mean squared difference of the batch cosine-similarity matrices of s and t
  (what verification uses is exactly those similarities);
- CosFace (Wang et al. 2018) on identity labels, where the student has a head and labels exist.

Resumable: the checkpoint holds model, optimiser, schedule, step, data order and RNG state, so
a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class TrainConfig:
    out: str
    epochs: float = 10.0
    batch_size: int = 128
    lr: float = 5e-4
    weight_decay: float = 0.05
    warmup_steps: int = 300
    relational_weight: float = 1.0
    cosface_weight: float = 0.05
    seed: int = 0
    threads: int = 2
    checkpoint_every_s: float = 300.0
    eval_every_steps: int = 500
    log_every_steps: int = 50
    shift: int = 4  # random translation in pixels
    jitter: float = 0.2  # brightness/contrast (and half as much saturation/gain) amplitude
    rotate: float = 10.0  # random rotation in degrees
    scale: float = 0.1  # random scale amplitude (1 +- scale)
    grayscale: float = 0.2  # share of training views turned to grayscale
    blur: float = 0.15  # share of training views blurred
    jpeg: float = 0.15  # share of training views re-compressed as JPEG
    device: str = "cpu"  # where the student trains: cpu, cuda, cuda:N
    precision: str = "fp32"  # "bf16": the forward pass under bfloat16 autocast (weights fp32)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainData:
    """Crops ``(N, 112, 112, 3)`` uint8, labels ``(N,)`` (-1 unknown), teacher ``(N, 2, D)``."""

    crops: np.ndarray
    labels: np.ndarray
    teacher: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.crops)
        if len(self.labels) != n or len(self.teacher) != n:
            raise ValueError("crops, labels and teacher embeddings differ in length")
        if self.teacher.ndim != 3 or self.teacher.shape[1] != 2:
            raise ValueError("teacher embeddings must have shape (N, 2, D)")


def centred_teacher(teacher: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Teacher embeddings minus their mean, renormalised; also returns the mean."""
    mean = teacher.reshape(-1, teacher.shape[-1]).mean(0)
    t = teacher - mean
    return t / np.maximum(np.linalg.norm(t, axis=-1, keepdims=True), 1e-9), mean


#: ITU-R BT.601 luma weights of R, G, B: what a grayscale photo keeps of a colour one.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def to_grayscale(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luma (:data:`LUMA_WEIGHTS`) of ``(N, 3, H, W)`` RGB images, repeated on the three
    channels (what a grayscale photo becomes when a colour model reads it)."""
    r, g, b = LUMA_WEIGHTS
    luma = r * x[:, 0:1] + g * x[:, 1:2] + b * x[:, 2:3]
    return luma.expand(-1, 3, -1, -1).contiguous()


def _affine(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Random rotation (+-``cfg.rotate`` degrees), scale (1 +- ``cfg.scale``) and shift
    (+-``cfg.shift`` px) about the crop centre, bilinear, borders repeated."""
    n, _, h, w = x.shape
    u = lambda: 2 * torch.rand(n, generator=gen) - 1  # noqa: E731 - one uniform draw in -1..1
    angle = torch.deg2rad(cfg.rotate * u())
    zoom = 1 + cfg.scale * u()
    tx, ty = 2 * cfg.shift * u() / w, 2 * cfg.shift * u() / h
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, tx], -1), torch.stack([sin, cos, ty], -1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _colour(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Brightness and contrast (+-``cfg.jitter``), saturation and per-channel gain
    (+-``cfg.jitter / 2``: other white balances and cameras)."""
    n = x.shape[0]
    u = lambda *shape: 2 * torch.rand(n, *shape, generator=gen) - 1  # noqa: E731
    grey = to_grayscale(x)
    x = grey + (x - grey) * (1 + cfg.jitter * u(1, 1, 1))  # saturation
    x = x * (1 + 0.5 * cfg.jitter * u(3, 1, 1))  # channel gains
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * (1 + cfg.jitter * u(1, 1, 1)) + mean * (1 + cfg.jitter * u(1, 1, 1)))


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of standard deviation ``sigma`` px (separable, 2 sigma radius)."""
    r = max(1, int(2 * sigma + 0.5))
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    rows, cols = k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), rows, groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), cols, groups=c)


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """JPEG re-compression at ``quality`` (OpenCV's libjpeg), image by image."""
    import cv2

    images = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    out = []
    for im in images:  # OpenCV's channel order is BGR: its luma must see the right channels
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(im[..., ::-1]),
                               [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("OpenCV could not encode a training view as JPEG")
        out.append(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float()


def augment(x: torch.Tensor, flip: torch.Tensor, cfg: TrainConfig,
            gen: torch.Generator) -> torch.Tensor:
    """The training views of ``(N, 3, 112, 112)`` 0..255 crops (docs/training.md,
    "Training views").

    Mirror where ``flip``; rotation, scale and shift; colour (brightness, contrast, saturation,
    channel gains); then, each on its own random share of the batch, grayscale
    (``cfg.grayscale``), Gaussian blur (``cfg.blur``, sigma 0.5..1.5 px) and JPEG
    re-compression (``cfg.jpeg``, quality 30..90). The teacher's target stays the clean
    image's embedding, so the student learns to ignore what these change.
    """
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    if cfg.rotate or cfg.scale or cfg.shift:
        x = _affine(x, cfg, gen)
    if cfg.jitter:
        x = _colour(x, cfg, gen)
    x = x.clamp(0, 255)
    def blur(v: torch.Tensor) -> torch.Tensor:
        return _blur(v, 0.5 + float(torch.rand((), generator=gen)))

    def jpeg(v: torch.Tensor) -> torch.Tensor:
        return _jpeg(v, int(torch.randint(30, 91, (), generator=gen)))

    for share, change in ((cfg.grayscale, to_grayscale), (cfg.blur, blur), (cfg.jpeg, jpeg)):
        pick = torch.rand(x.shape[0], generator=gen) < share
        if share and pick.any():
            x = x.clone()
            x[pick] = change(x[pick])
    return x


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    p = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, p)))


def train(model: torch.nn.Module, data: TrainData, cfg: TrainConfig,
          evaluate: Callable[[torch.nn.Module], dict[str, float]] | None = None,
          progress: bool = True, max_seconds: float | None = None,
          stop_at_step: int | None = None) -> dict[str, Any]:
    """Train ``model`` (``forward(images 0..255) -> embeddings``, optional ``head``) in place.

    Returns the training log. Stops after ``cfg.epochs`` epochs, or earlier after
    ``max_seconds`` or at ``stop_at_step`` (then resumable from the checkpoint in ``cfg.out``).
    """
    from tqdm import tqdm

    if cfg.precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be fp32 or bf16, got {cfg.precision!r}")
    torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device)
    model.to(device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_file = out / "checkpoint.pt"
    log_file = out / "log.jsonl"
    n = len(data.crops)
    steps_per_epoch = max(1, n // cfg.batch_size)
    total = int(math.ceil(cfg.epochs * steps_per_epoch))
    teacher, _ = centred_teacher(np.asarray(data.teacher, dtype=np.float32))
    teacher_t = torch.from_numpy(teacher)
    labels_t = torch.from_numpy(np.asarray(data.labels, dtype=np.int64))
    head = getattr(model, "head", None)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)  # dropout draws from torch's global generator
    step, order = 0, rng.permutation(n)
    history: list[dict[str, Any]] = []
    if ckpt_file.exists():
        ck = torch.load(ckpt_file, weights_only=False, map_location=device)
        model.load_state_dict(ck["model"])  # onto the model's device
        opt.load_state_dict(ck["optimizer"])
        step, order = ck["step"], ck["order"]
        gen.set_state(ck["torch_rng"])
        rng.bit_generator.state = ck["numpy_rng"]
        torch.set_rng_state(ck["global_rng"])
        history = ck.get("history", [])

    def save() -> None:
        tmp = ckpt_file.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                    "order": order, "torch_rng": gen.get_state(),
                    "numpy_rng": rng.bit_generator.state, "history": history,
                    "global_rng": torch.get_rng_state(),
                    "config": asdict(cfg)}, tmp)
        tmp.replace(ckpt_file)

    start, last_save = time.time(), time.time()
    bar = tqdm(total=total, initial=step, disable=not progress, desc="train", smoothing=0.05)
    model.train()
    sums: dict[str, float] = {}
    counted = 0
    while step < total:
        if max_seconds is not None and time.time() - start > max_seconds:
            break
        if stop_at_step is not None and step >= stop_at_step:
            break
        pos = (step % steps_per_epoch) * cfg.batch_size
        if step and step % steps_per_epoch == 0:
            order = rng.permutation(n)
        idx = np.sort(order[pos : pos + cfg.batch_size])
        x = torch.from_numpy(np.ascontiguousarray(data.crops[idx])).permute(0, 3, 1, 2).float()
        flip = torch.rand(len(idx), generator=gen) < 0.5
        x = augment(x, flip, cfg, gen)
        t = teacher_t[torch.from_numpy(idx), flip.long()].to(device)
        x = x.to(device)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, total, cfg)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
            s = model(x)
        s = s.float()
        sn = F.normalize(s, dim=-1)
        loss_cos = (1 - (sn * t).sum(-1)).mean()
        loss_rel = (sn @ sn.T - t @ t.T).pow(2).mean()
        loss = loss_cos + cfg.relational_weight * loss_rel
        loss_face = torch.zeros(())
        y = labels_t[torch.from_numpy(idx)].to(device)
        if head is not None and cfg.cosface_weight and (y >= 0).any():
            keep = y >= 0
            loss_face = F.cross_entropy(head(s[keep], y[keep]), y[keep])
            loss = loss + cfg.cosface_weight * loss_face
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        step += 1
        for k, v in (("loss", loss.item()), ("cos", loss_cos.item()), ("rel", loss_rel.item()),
                     ("cosface", loss_face.item())):
            sums[k] = sums.get(k, 0.0) + v
        counted += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr_at(step, total, cfg):.2e}")
        record: dict[str, Any] | None = None
        if step % cfg.log_every_steps == 0 or step == total:
            rate = bar.format_dict.get("rate")
            record = {"step": step, "epoch": step / steps_per_epoch, "time": time.time(),
                      **{k: round(v / counted, 5) for k, v in sums.items()},
                      "images_per_s": rate * cfg.batch_size if rate else None}
            sums, counted = {}, 0
        if evaluate is not None and (step % cfg.eval_every_steps == 0 or step == total):
            model.eval()
            metrics = evaluate(model)
            model.train()
            record = {**(record or {"step": step, "epoch": step / steps_per_epoch}), **metrics}
            bar.write(f"step {step} ({step / steps_per_epoch:.2f} epochs): {metrics}")
        if record is not None:
            history.append(record)
            with open(log_file, "a") as f:
                f.write(json.dumps(record) + "\n")
        if time.time() - last_save > cfg.checkpoint_every_s:
            save()
            last_save = time.time()
    bar.close()
    save()
    model.eval()
    return {"step": step, "total": total, "history": history, "done": step >= total}

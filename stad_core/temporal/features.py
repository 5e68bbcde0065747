"""Fine-stream features (a backbone's intermediate depths, per feature step) and coarse frames.

A video of F frames becomes S = ceil(F / step) feature steps; step s covers frames
``[s * step, (s + 1) * step)`` (the last frame repeats to fill the last step). Per step:

* each depth in ``depths`` (a module path of the backbone, e.g. ``slow.res4``): the module's
  output averaged over space, then over the step's frames -> ``[D_k]``; with ``temporal_pool =
  "mean_std"`` also its standard deviation over the step's frames -> ``[2 * D_k]`` (how much the
  depth changes at the full frame rate: what a sparse view cannot see);
* ``coarse``: the step's centre frame, area-downsampled to ``coarse_size`` x ``coarse_size`` RGB in
  0..1 -> ``[3 * coarse_size**2]`` -- the sparse raw view the Coarse stream learns from.

The backbone runs on consecutive windows of ``clip_frames`` frames (a multiple of ``step``), so every
frame is seen once at the full frame rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator

from stad_core.config import StageConfig
from stad_core.errors import ConfigError
from stad_core.models import VideoBackbone, build_backbone

COARSE = "coarse"


class FineFeatureConfig(StageConfig):
    """How the fine bank is computed (the extract stage's config)."""

    backbone: str = Field("x3d_s", description="any name of stad_core.models.BACKBONES")
    backbone_knobs: dict[str, Any] = Field(default_factory=dict, description="the backbone's constructor arguments")
    weights: str | None = Field(None, description="backbone checkpoint (None: random init from init_seed)")
    init_seed: int = 0
    depths: tuple[str, ...] = Field(("res4", "res5"), description="module paths of the backbone whose outputs are kept")
    step: int = Field(4, ge=1, description="frames per feature step (the fine bank's temporal stride)")
    clip_frames: int = Field(32, ge=1, description="frames per backbone forward (a multiple of step)")
    short_side: int | None = Field(None, description="decode with this short side (None: as stored)")
    coarse_size: int = Field(8, ge=1, le=64)
    temporal_pool: str = Field("mean_std", pattern="^(mean|mean_std)$",
                               description="per step: the mean over its frames, or mean and std (fine-rate change)")
    dtype: str = Field("float16", pattern="^(float16|float32)$")

    @field_validator("clip_frames")
    @classmethod
    def _multiple(cls, v: int, info: Any) -> int:
        step = info.data.get("step", 1)
        if v % step:
            raise ValueError(f"clip_frames ({v}) must be a multiple of step ({step})")
        return v


#: The CPU-sized fine stream of the demo, the tests and the benchmark (a two-core machine, 32x32 frames).
CPU_DEMO: dict[str, Any] = {"backbone": "slowonly_r50", "backbone_knobs": {"width": 8, "blocks": [1, 1, 1, 1]},
                            "depths": ("slow.res4", "slow.res5")}


def build_fine_backbone(config: FineFeatureConfig) -> VideoBackbone:
    """The backbone of ``config`` in eval mode (random init from ``init_seed`` unless ``weights``)."""
    torch.manual_seed(config.init_seed)
    knobs = {k: tuple(v) if isinstance(v, list) else v for k, v in config.backbone_knobs.items()}
    model = build_backbone(config.backbone, **knobs)
    if config.weights:
        from stad_core.models import load_backbone_checkpoint

        load_backbone_checkpoint(model, config.weights)
    names = dict(model.named_modules())
    missing = [d for d in config.depths if d not in names]
    if missing:
        top = [n for n in names if n and n.count(".") <= 1]
        raise ConfigError(f"backbone {config.backbone!r} has no module(s) {missing}; e.g. {top[:12]}")
    return model.eval()


def depth_dims(model: VideoBackbone, config: FineFeatureConfig) -> dict[str, int]:
    """Channels of each depth (one probe forward on a blank clip)."""
    feats = fine_features(np.zeros((config.step, 32, 32, 3), np.uint8), model, config)
    return {name: int(f.shape[1]) for name, f in feats.items()}


def _forward_depths(model: VideoBackbone, clip: torch.Tensor, depths: Sequence[str]) -> dict[str, torch.Tensor]:
    """``clip [1, 3, T, H, W]`` -> per depth ``[D_k, T_k]`` (space-averaged)."""
    out: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    hooks = [modules[d].register_forward_hook(
        lambda _m, _i, y, name=d: out.__setitem__(name, (y[0] if isinstance(y, (list, tuple)) else y)[0].mean((-1, -2))))
        for d in depths]
    try:
        with torch.inference_mode():
            model(clip)
    finally:
        for h in hooks:
            h.remove()
    return out


def coarse_frames(frames: np.ndarray, step: int, size: int) -> np.ndarray:
    """float32 ``[S, 3 * size * size]``: each step's centre frame, downsampled, 0..1."""
    count = -(-len(frames) // step)
    centre = np.minimum(np.arange(count) * step + step // 2, len(frames) - 1)
    x = torch.from_numpy(np.ascontiguousarray(frames[centre])).permute(0, 3, 1, 2).float() / 255.0
    return F.adaptive_avg_pool2d(x, size).flatten(1).numpy()


def fine_features(frames: np.ndarray, model: VideoBackbone, config: FineFeatureConfig) -> dict[str, np.ndarray]:
    """uint8 ``[F, H, W, 3]`` -> ``{"coarse": [S, 3*c*c], depth: [S, D_k], ...}`` float32."""
    step, clip = config.step, config.clip_frames
    count = -(-len(frames) // step)
    padded = np.concatenate([frames, np.repeat(frames[-1:], count * step - len(frames), axis=0)])
    parts: dict[str, list[torch.Tensor]] = {d: [] for d in config.depths}
    for start in range(0, len(padded), clip):
        chunk = padded[start:start + clip]
        x = torch.from_numpy(np.ascontiguousarray(chunk)).permute(3, 0, 1, 2).unsqueeze(0)  # [1, 3, T, H, W]
        steps = len(chunk) // step
        for d, f in _forward_depths(model, x, config.depths).items():
            f = f.float()
            if f.shape[-1] != len(chunk):  # a backbone that strides in time: back to one value per frame
                f = F.interpolate(f.unsqueeze(0), size=len(chunk), mode="linear", align_corners=False)[0]
            per_step = f.reshape(f.shape[0], steps, -1)  # [D_k, steps, frames per step]
            pooled = [per_step.mean(-1)]
            if config.temporal_pool == "mean_std":
                pooled.append(per_step.std(-1, unbiased=False))
            parts[d].append(torch.cat(pooled).T)  # [steps, D_k or 2 D_k]
    out = {COARSE: coarse_frames(frames, step, config.coarse_size)}
    out.update({d: torch.cat(p).numpy() for d, p in parts.items()})
    return out


def clip_gflops(model: VideoBackbone, config: FineFeatureConfig, height: int, width: int) -> float:
    """GFLOPs of one backbone forward over ``clip_frames`` frames (torch's FLOP counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(torch.zeros(1, 3, config.clip_frames, height, width))
    return counter.get_total_flops() / 1e9

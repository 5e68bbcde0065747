"""Grid Pool and Grid Unpool (Coarse-Fine Networks): learned, differentiable temporal resampling.

Time is continuous over ``[0, T)``; input frame k sits at ``k + 0.5``. Grid Pool gets a positive
confidence per output region (``T_out`` equal regions of the input) and treats them as a
piecewise-constant density over input time. Output sample i is placed at the inverse of that
density's CDF at ``(i + 0.5) / T_out`` (inverse-transform sampling): confident regions get more,
denser samples. The value at a fractional position is the linear interpolation of the two nearest
input frames, so the output is differentiable in the positions and the positions in the
confidences -- gradients reach whatever predicts them.

With equal confidences the positions are the region centres ``(i + 0.5) * T / T_out``: plain
uniform sampling. Grid Unpool maps per-sample outputs back to every input frame by linear
interpolation over the (sorted) sample positions, clamped at both ends, so the output is aligned
with the input frames again whatever the confidences were.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def grid_positions(confidence: Tensor, length: int) -> Tensor:
    """Sample positions ``[B, T_out]`` in input time ``[0, length)`` from confidences ``[B, T_out]`` (> 0)."""
    b, n = confidence.shape
    density = confidence / confidence.sum(dim=1, keepdim=True)  # mass of each region
    cdf = torch.cat([density.new_zeros(b, 1), density.cumsum(dim=1)], dim=1)  # [B, T_out + 1]
    targets = (torch.arange(n, device=confidence.device, dtype=density.dtype) + 0.5) / n  # [T_out]
    targets = targets.expand(b, n).contiguous()
    # Region j holds target u when cdf[j] <= u < cdf[j + 1] (an index choice: no gradient needed).
    region = torch.searchsorted(cdf[:, 1:].detach().contiguous(), targets, right=True).clamp(max=n - 1)
    below = cdf.gather(1, region)
    mass = density.gather(1, region)
    within = (targets - below) / mass.clamp_min(1e-12)  # 0..1 inside the region
    return (region.to(density.dtype) + within) * (length / n)


def interpolate_at(x: Tensor, positions: Tensor) -> Tensor:
    """``x [B, C, T]`` (frame k at k + 0.5) read at continuous ``positions [B, N]`` -> ``[B, C, N]``."""
    b, c, t = x.shape
    index = (positions - 0.5).clamp(0, t - 1)
    lo = index.floor().clamp(max=t - 1).long()
    hi = (lo + 1).clamp(max=t - 1)
    frac = (index - lo.to(index.dtype)).unsqueeze(1)  # [B, 1, N]
    x_lo = x.gather(2, lo.unsqueeze(1).expand(b, c, -1))
    x_hi = x.gather(2, hi.unsqueeze(1).expand(b, c, -1))
    return x_lo * (1 - frac) + x_hi * frac


def grid_unpool(y: Tensor, positions: Tensor, length: int) -> Tensor:
    """Per-sample ``y [B, C, N]`` at ``positions [B, N]`` (increasing) -> per-frame ``[B, C, length]``:
    frame k (at k + 0.5) interpolates the two samples around it, clamped to the first/last sample."""
    b, c, n = y.shape
    frames = torch.arange(length, device=y.device, dtype=positions.dtype) + 0.5
    frames = frames.expand(b, length).contiguous()
    right = torch.searchsorted(positions.detach().contiguous(), frames, right=True).clamp(1, n - 1)  # [B, L]
    left = right - 1
    p_left, p_right = positions.gather(1, left), positions.gather(1, right)
    frac = ((frames - p_left) / (p_right - p_left).clamp_min(1e-6)).clamp(0, 1).unsqueeze(1)
    if n == 1:
        return y.expand(b, c, length)
    y_left = y.gather(2, left.unsqueeze(1).expand(b, c, -1))
    y_right = y.gather(2, right.unsqueeze(1).expand(b, c, -1))
    return y_left * (1 - frac) + y_right * frac


def uniform_positions(batch: int, samples: int, length: int, device: torch.device | None = None) -> Tensor:
    """``[B, N]``: the region centres (what Grid Pool gives for equal confidences)."""
    centres = (torch.arange(samples, device=device, dtype=torch.float32) + 0.5) * (length / samples)
    return centres.expand(batch, samples).contiguous()


class GridPool(nn.Module):
    """Predicts a confidence per output region from the input and samples ``samples`` positions.

    Input ``x [B, C, T]`` -> ``(pooled [B, C, N], positions [B, N])``. The confidence predictor sees
    the input averaged over each output region (a cheap look at the whole video), two temporal
    convolutions, and a softplus; ``floor`` keeps a share of uniform mass so no region is dropped
    (every region keeps at least ``floor`` times its uniform share of the samples).
    The last convolution starts at zero: training begins from uniform sampling.
    """

    def __init__(self, channels: int, samples: int, hidden: int = 32, floor: float = 0.25) -> None:
        super().__init__()
        self.samples = samples
        self.floor = floor
        self.predictor = nn.Sequential(
            nn.Conv1d(channels, hidden, 3, padding=1), nn.ReLU(inplace=True), nn.Conv1d(hidden, 1, 3, padding=1))
        # Start from uniform sampling (equal confidences) and learn where to look from there.
        nn.init.zeros_(self.predictor[-1].weight)
        nn.init.zeros_(self.predictor[-1].bias)

    def confidence(self, x: Tensor) -> Tensor:
        """``[B, N]`` positive confidences (mean 1)."""
        summary = F.adaptive_avg_pool1d(x, self.samples)  # [B, C, N]
        raw = F.softplus(self.predictor(summary).squeeze(1))  # [B, N]
        raw = raw / raw.mean(dim=1, keepdim=True).clamp_min(1e-6)
        return (1 - self.floor) * raw + self.floor

    def forward(self, x: Tensor, source: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Confidences from ``x``; samples read from ``source`` (default ``x``), ``[B, C', T]``."""
        positions = grid_positions(self.confidence(x), x.shape[-1])
        return interpolate_at(x if source is None else source, positions), positions

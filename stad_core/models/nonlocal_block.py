"""Non-local block, embedded-Gaussian form (Wang et al., CVPR 2018), as MMAction2's SlowOnly-NL AVA models use it.

``y = x + BN(W_out * (softmax(theta(x)^T phi(x) / sqrt(C')) g(x)))`` over all ``T x H x W`` positions,
with ``C' = C / 2`` and ``phi``/``g`` max-pooled ``1 x 2 x 2`` (sub-sampling: keys/values at a quarter
of the positions). ``theta``/``phi``/``g`` are 1x1x1 convs with bias; ``out`` is a 1x1x1 conv without
bias followed by BN (whose weight starts at 0, so a fresh block is the identity).

Names (ours -> MMAction2 ``non_local_block.``): ``theta`` -> ``theta.conv``, ``phi`` -> ``phi.0.conv``,
``g`` -> ``g.0.conv``, ``out`` -> ``conv_out.conv``, ``bn`` -> ``conv_out.bn``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class NonLocalEmbedGauss(nn.Module):
    """``[B, C, T, H, W]`` -> same shape."""

    def __init__(self, channels: int, reduction: int = 2, sub_sample: bool = True) -> None:
        super().__init__()
        inner = max(channels // reduction, 1)
        self.inner = inner
        self.sub_sample = sub_sample
        self.theta = nn.Conv3d(channels, inner, 1)
        self.phi = nn.Conv3d(channels, inner, 1)
        self.g = nn.Conv3d(channels, inner, 1)
        self.out = nn.Conv3d(inner, channels, 1, bias=False)
        self.bn = nn.BatchNorm3d(channels)
        nn.init.zeros_(self.bn.weight)

    def _pool(self, x: Tensor) -> Tensor:
        return F.max_pool3d(x, (1, 2, 2)) if self.sub_sample else x

    def forward(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        theta = self.theta(x).flatten(2).transpose(1, 2)  # [B, N, C']
        phi = self._pool(self.phi(x)).flatten(2)  # [B, C', M]
        g = self._pool(self.g(x)).flatten(2).transpose(1, 2)  # [B, M, C']
        attn = torch.softmax(theta @ phi / self.inner**0.5, dim=-1)  # [B, N, M]
        y = (attn @ g).transpose(1, 2).reshape(b, self.inner, *x.shape[2:])
        return x + self.bn(self.out(y))

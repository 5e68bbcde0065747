"""VideoMAE ViT (ViT-B/L with tubelet patches) returning its token grid as a stride-16 map.

Architecture (Tong et al., NeurIPS 2022; the fine-tuned AVA models of MMAction2's model zoo):
a ``2 x 16 x 16`` Conv3d patch embedding (stride = kernel), a fixed 1-D sine-cosine position table
over the flattened ``(t, h, w)`` token index, pre-norm transformer blocks (LayerNorm eps 1e-6,
``qkv`` projection without bias plus separate learned ``q_bias`` / ``v_bias`` (the key bias is
zero), GELU MLP with ratio 4, stochastic depth), and a final LayerNorm over every token.

When the input's token grid differs spatially from the trained one (224 -> 14 x 14), the table is
reshaped to ``[T', 14, 14, C]`` and resized bicubically per temporal slice, as MMAction2 does for its
AVA fine-tuning at 256-pixel short sides; a different ``T'`` is resized linearly in time first.

Input: ``[B, 3, T, H, W]``; output map ``[B, C, T/2, floor(H/16), floor(W/16)]`` (the patch
convolution drops partial patches, exactly like the published code; use H, W multiples of 16 to
honour the ``ceil`` contract). ViT-B: C = 768, depth 12, 12 heads; ViT-L: 1024, 24, 16.

Our parameter names follow the original VideoMAE release (``blocks.N.attn.qkv``, ``q_bias``,
``mlp.fc1``) with the patch conv at ``patch_embed.proj``; :func:`videomae_source_key` maps them
to the MMAction2 names (``backbone.patch_embed.projection``, ``backbone.blocks.N.mlp.layers.0.0``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stad_core.models.base import BackboneOutput, Normalization, VideoBackbone


def sinusoid_table(n_position: int, dim: int) -> Tensor:
    """``[1, n_position, dim]`` fixed sine (even dims) / cosine (odd dims) table, computed in float64.

    Angle of position ``p`` in dims ``2i`` and ``2i + 1``: ``p / 10000 ** (2i / dim)``.
    """
    exponent = torch.arange(dim, dtype=torch.float64)
    exponent = (exponent - exponent % 2) / dim
    angles = torch.arange(n_position, dtype=torch.float64).view(-1, 1) * torch.pow(10000.0, -exponent).view(1, -1)
    angles[:, 0::2].sin_()
    angles[:, 1::2].cos_()
    return angles.to(torch.float32).unsqueeze(0)


def drop_path(x: Tensor, p: float, training: bool) -> Tensor:
    """Stochastic depth: drop the whole residual branch per sample with probability ``p``."""
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask / keep


class Attention(nn.Module):
    """Multi-head self-attention with learned q/v biases and a zero k bias."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias = self.v_bias = None
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, N, C]`` -> ``[B, N, C]``."""
        b, n, c = x.shape
        bias = None
        if self.q_bias is not None and self.v_bias is not None:
            bias = torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])
        qkv = F.linear(x, self.qkv.weight, bias).reshape(b, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each [B, heads, N, c/heads]
        y = F.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm block: ``x + drop(attn(norm1(x)))``, then ``x + drop(mlp(norm2(x)))``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, drop_path: float,
                 eps: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = drop_path

    def forward(self, x: Tensor) -> Tensor:
        x = x + drop_path(self.attn(self.norm1(x)), self.drop_path, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_path, self.training)


class PatchEmbed(nn.Module):
    def __init__(self, dim: int, patch_size: int, tubelet: int) -> None:
        super().__init__()
        k = (tubelet, patch_size, patch_size)
        self.proj = nn.Conv3d(3, dim, kernel_size=k, stride=k)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, 3, T, H, W]`` -> ``[B, C, T/tubelet, H/p, W/p]``."""
        return self.proj(x)


class VideoMAEViT(VideoBackbone):
    """VideoMAE ViT: clip -> one map ``[B, width, T/tubelet, H/16, W/16]`` (final-normed tokens).

    ``img_size`` and ``num_frames`` only fix the size of the stored position table (224 and 16 for
    the published models); other input sizes interpolate it.
    """

    def __init__(
        self,
        width: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        patch_size: int = 16,
        tubelet: int = 2,
        img_size: int = 224,
        num_frames: int = 16,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        eps: float = 1e-6,
        final_norm: bool = True,
        normalization: Normalization | None = None,
    ) -> None:
        if patch_size != 16:
            raise ValueError(f"patch_size must be 16 (stride-16 maps), got {patch_size}")
        super().__init__(pathway_channels=(width,), normalization=normalization or Normalization.imagenet())
        self.width, self.depth, self.tubelet, self.patch_size = width, depth, tubelet, patch_size
        self.grid = (num_frames // tubelet, img_size // patch_size, img_size // patch_size)
        self.patch_embed = PatchEmbed(width, patch_size, tubelet)
        # Persistent, so MMAction2's stored table loads (the original release does not store it).
        self.register_buffer("pos_embed", sinusoid_table(math.prod(self.grid), width))
        rates = torch.linspace(0, drop_path_rate, depth, device="cpu").tolist() if depth else []
        self.blocks = nn.ModuleList(Block(width, num_heads, mlp_ratio, qkv_bias, r, eps) for r in rates)
        self.norm = nn.LayerNorm(width, eps=eps) if final_norm else None

    def position_table(self, grid: tuple[int, int, int]) -> Tensor:
        """``[1, t * h * w, C]`` position table for a token grid (resized when it differs)."""
        if grid == self.grid:
            return self.pos_embed
        t0, h0, w0 = self.grid
        table = self.pos_embed.reshape(t0, h0, w0, self.width)
        if grid[0] != t0:
            flat = table.permute(1, 2, 3, 0).reshape(1, h0 * w0 * self.width, t0)
            flat = F.interpolate(flat, size=grid[0], mode="linear", align_corners=False)
            table = flat.reshape(h0, w0, self.width, grid[0]).permute(3, 0, 1, 2)
        if grid[1:] != (h0, w0):
            table = F.interpolate(table.permute(0, 3, 1, 2), size=grid[1:], mode="bicubic", align_corners=False)
            table = table.permute(0, 2, 3, 1)
        return table.reshape(1, -1, self.width)

    def forward_features(self, x: Tensor) -> BackboneOutput:
        if x.shape[2] % self.tubelet:
            raise ValueError(f"VideoMAE needs T divisible by the tubelet size {self.tubelet}, got T={x.shape[2]}")
        y = self.patch_embed(x)  # [B, C, t, h, w]
        b, c, t, h, w = y.shape
        tokens = y.flatten(2).transpose(1, 2) + self.position_table((t, h, w)).to(y.dtype)
        for block in self.blocks:
            tokens = block(tokens)
        if self.norm is not None:
            tokens = self.norm(tokens)
        return BackboneOutput([tokens.transpose(1, 2).reshape(b, c, t, h, w)])


VIT_SIZES: dict[str, dict[str, int]] = {
    "vit_b_videomae": {"width": 768, "depth": 12, "num_heads": 12},
    "vit_l_videomae": {"width": 1024, "depth": 24, "num_heads": 16},
}


def build_videomae(name: str, width: int | None = None, depth: int | None = None, num_heads: int | None = None,
                   **knobs: object) -> VideoMAEViT:
    """The published size of ``name``, or a reduced one: ``width=w`` alone gives ``w`` channels,
    2 blocks and ``max(1, w // 32)`` heads (CPU tests and demos)."""
    size = dict(VIT_SIZES[name])
    if width is not None:
        size = {"width": width, "depth": 2, "num_heads": max(1, width // 32)}
    if depth is not None:
        size["depth"] = depth
    if num_heads is not None:
        size["num_heads"] = num_heads
    return VideoMAEViT(**size, **knobs)  # type: ignore[arg-type]


# --- checkpoint names -------------------------------------------------------------------------

_MMA_PART = {"patch_embed.proj.": "patch_embed.projection.", "mlp.fc1.": "mlp.layers.0.0.",
             "mlp.fc2.": "mlp.layers.1."}


def videomae_source_key(key: str, family: str) -> str | None:
    """Our name -> the name in a ``family`` checkpoint (None: that family does not store it).

    * ``videomae`` (original release, fine-tuned ``model``/``module`` dicts): our names as they
      are; the fixed position table is usually not stored (see :data:`VIDEOMAE_OPTIONAL`).
    * ``videomae_pretrain`` (the self-supervised release): ``encoder.`` + our names.
    * ``mmaction2``: ``backbone.`` prefix, ``patch_embed.projection``, FFN ``mlp.layers.0.0`` /
      ``mlp.layers.1``; ``backbone.pos_embed`` is stored.
    """
    if family == "videomae":
        return key
    if family == "videomae_pretrain":
        return "encoder." + key
    if family == "mmaction2":
        for ours, theirs in _MMA_PART.items():
            key = key.replace(ours, theirs)
        return "backbone." + key
    return key  # stad: our own export


#: our keys a family may lack (the fixed sine-cosine table: ours is then used as built)
VIDEOMAE_OPTIONAL = {"videomae": {"pos_embed"}, "videomae_pretrain": {"pos_embed"}}
#: source keys that are not part of the backbone (classifier, mean-pooling norm, MAE decoder)
VIDEOMAE_HEAD_PREFIXES = ("head.", "fc_norm.", "cls_head.", "roi_head.", "decoder.", "encoder_to_decoder.",
                          "mask_token", "backbone.fc_norm.")


def videomae_family(keys: set[str]) -> str | None:
    """Which VideoMAE layout the keys are in (None: not a VideoMAE ViT checkpoint)."""
    # q_bias/v_bias tell a VideoMAE ViT from an MViT, which has the same patch-embedding names
    if "backbone.patch_embed.projection.weight" in keys and "backbone.blocks.0.attn.q_bias" in keys:
        return "mmaction2"
    if "encoder.patch_embed.proj.weight" in keys:
        return "videomae_pretrain"
    if "patch_embed.proj.weight" in keys and "blocks.0.attn.q_bias" in keys:
        return "videomae"
    return None

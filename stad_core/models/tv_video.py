"""torchvision video classifiers adapted to return spatial maps at stride 16.

The classification head (pooling + fc) is dropped; the last feature map is returned:

=============  ==========================================  ============  ====================
model          map                                         native stride  returned
=============  ==========================================  ============  ====================
r3d_18,        layer4 ``[B, 512, ceil(T/8), H/16, W/16]``   16            as is
r2plus1d_18
mc3_18         layer4 ``[B, 512, T, H/16, W/16]``           16            as is
mvit_v2_s      tokens ``[B, 768, T/2, H/32, W/32]``          32            2x trilinear -> 16
swin3d_t       stage 4 ``[B, 768, T/2, H/32, W/32]``         32            2x trilinear -> 16
s3d            Mixed_5c ``[B, 1024, T/8, H/32, W/32]``       32            2x trilinear -> 16
=============  ==========================================  ============  ====================

The stride-32 transformers keep their trained weights unchanged (no re-striding, which would change
their relative-position tables); the 2x upsample is what honours the stride-16 contract. Weights
come from a local state-dict file (torchvision's own key names) — never downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import video as tvv
from torchvision.models.video import mvit

from stad_core.errors import InputFileError
from stad_core.models.base import BackboneOutput, Normalization, VideoBackbone

TorchvisionVideoName = Literal["r3d_18", "mc3_18", "r2plus1d_18", "mvit_v2_s", "swin3d_t", "s3d"]

_CHANNELS: dict[str, int] = {
    "r3d_18": 512, "mc3_18": 512, "r2plus1d_18": 512, "mvit_v2_s": 768, "swin3d_t": 768, "s3d": 1024,
}


def load_torchvision_state(model: nn.Module, path: str | Path) -> None:
    """Load a torchvision state dict (``*.pth`` as published) strictly, ignoring the classifier head."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "backbone weights not found",
                             hint="put the torchvision .pth file there, e.g. under $TORCH_HOME/hub/checkpoints")
    state = torch.load(path, map_location="cpu", weights_only=True)
    own = model.state_dict()
    state = {k: v for k, v in state.items() if k in own or not (k.startswith("fc.") or k.startswith("head."))}
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not (k.startswith("fc.") or k.startswith("head."))]
    if missing or result.unexpected_keys:
        raise InputFileError(path, f"not a matching state dict: missing {missing[:5]}, "
                                   f"unexpected {result.unexpected_keys[:5]}")


def _reduced_transformer(name: str, width: int) -> nn.Module:
    """A 4-block, ``width``-wide MViT v2 / Swin3D (same stages and strides; for CPU tests/demos)."""
    if width % 8:
        raise ValueError(f"width must be a multiple of 8, got {width}")
    if name == "swin3d_t":
        return tvv.swin_transformer.SwinTransformer3d(
            patch_size=[2, 4, 4], embed_dim=width, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8],
            window_size=[8, 7, 7])
    # MViT v2: one block per stage; channels double and queries pool 2x at each stage transition.
    dims = [width, width, 2 * width, 4 * width, 8 * width]
    strides_kv = [[1, 8, 8], [1, 4, 4], [1, 2, 2], [1, 1, 1]]
    blocks = [
        mvit.MSBlockConfig(num_heads=2**i, input_channels=dims[i], output_channels=dims[i + 1],
                           kernel_q=[3, 3, 3], kernel_kv=[3, 3, 3],
                           stride_q=[1, 1, 1] if i == 0 else [1, 2, 2], stride_kv=strides_kv[i])
        for i in range(4)
    ]
    return mvit.MViT(spatial_size=(224, 224), temporal_size=16, block_setting=blocks, residual_pool=True,
                     residual_with_cls_embed=False, rel_pos_embed=True, proj_after_attn=True)


class TorchvisionVideoBackbone(VideoBackbone):
    """A torchvision video model returning one map ``[B, C, T', ceil(H/16), ceil(W/16)]``.

    ``T'`` is ``ceil(T/8)`` for the ResNets and S3D, ``T/2`` for MViT v2 and Swin3D.
    MViT v2 needs ``T`` even; S3D needs ``T >= 8``; Swin3D pads internally. ``width`` builds a
    reduced 4-block MViT v2 / Swin3D (``8 * width`` output channels) that runs on a CPU.
    """

    def __init__(self, name: TorchvisionVideoName, weights_path: str | Path | None = None,
                 width: int | None = None, **model_kwargs: object) -> None:
        if name not in _CHANNELS:
            raise ValueError(f"unknown torchvision video model {name!r}; choose from {sorted(_CHANNELS)}")
        if width is not None and name not in ("mvit_v2_s", "swin3d_t"):
            raise ValueError(f"width applies to mvit_v2_s and swin3d_t only, not {name}")
        norm = Normalization.torchvision_video() if name in ("r3d_18", "mc3_18", "r2plus1d_18") \
            else Normalization.imagenet() if name == "s3d" else Normalization.kinetics()
        channels = _CHANNELS[name] if width is None else 8 * width
        super().__init__(pathway_channels=(channels,), normalization=norm)
        self.name = name
        if width is None:
            self.model = getattr(tvv, name)(weights=None, **model_kwargs)
        else:
            self.model = _reduced_transformer(name, width)
        if weights_path is not None:
            load_torchvision_state(self.model, weights_path)
        # The classifier is never used: drop it so it holds no memory and no parameters.
        for head in ("fc", "head", "avgpool", "classifier"):
            if hasattr(self.model, head):
                setattr(self.model, head, nn.Identity())

    def _native(self, x: Tensor) -> Tensor:
        m = self.model
        if self.name in ("r3d_18", "mc3_18", "r2plus1d_18"):
            x = m.stem(x)
            return m.layer4(m.layer3(m.layer2(m.layer1(x))))
        if self.name == "s3d":
            return m.features(x)
        if self.name == "swin3d_t":
            x = m.norm(m.features(m.pos_drop(m.patch_embed(x))))  # [B, T, H, W, C]
            return x.permute(0, 4, 1, 2, 3)
        # MViT v2: track the token grid from the patch embedding, not the construction size.
        x = m.conv_proj(x)
        thw = tuple(x.shape[2:])
        x = m.pos_encoding(x.flatten(2).transpose(1, 2))
        for block in m.blocks:
            x, thw = block(x, thw)
        x = m.norm(x)[:, 1:]  # drop the class token
        b, _, c = x.shape
        return x.transpose(1, 2).reshape(b, c, *thw)

    def forward_features(self, x: Tensor) -> BackboneOutput:
        h16, w16 = -(-x.shape[3] // 16), -(-x.shape[4] // 16)
        y = self._native(x)
        if y.shape[-2:] != (h16, w16):
            y = F.interpolate(y, size=(y.shape[2], h16, w16), mode="trilinear", align_corners=False)
        return BackboneOutput([y])

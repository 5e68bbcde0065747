"""Import SlowFast/SlowOnly checkpoints from PySlowFast and MMAction2 into :class:`SlowFastResNet`.

Key layouts (facts about the published checkpoints):

* PySlowFast (``checkpoint["model_state"]``): ``s1.pathway0_stem.conv.weight``,
  ``s1.pathway0_stem.bn.*``, ``s2.pathway0_res0.branch1.weight`` / ``branch1_bn.*``,
  ``s2.pathway0_res0.branch2.{a,b,c}.weight`` / ``branch2.{a,b,c}_bn.*``, laterals
  ``s{1..4}_fuse.conv_f2s.weight`` / ``s{1..4}_fuse.bn.*``, head ``head.projection.{weight,bias}``
  (``[num_classes, 2304]``). ``pathway0`` is Slow, ``pathway1`` Fast.
* MMAction2 (``checkpoint["state_dict"]``): ``backbone.slow_path.conv1.conv.weight`` /
  ``conv1.bn.*``, ``backbone.slow_path.layer1.0.conv{1,2,3}.{conv,bn}.*``,
  ``layerN.0.downsample.{conv,bn}.*``, laterals ``backbone.slow_path.conv1_lateral.conv.weight``
  and ``layer{1,2,3}_lateral.conv.weight`` (no BN), ``backbone.fast_path.*``; SlowOnly drops the
  ``slow_path.`` level (``backbone.conv1.conv.weight``); AVA head ``roi_head.bbox_head.fc_cls.*``
  (``[81, 2304]``, row 0 = background).

Our names (see :mod:`stad_core.models.resnet3d`): ``slow.stem.conv``, ``slow.res2.0.conv_a``,
``slow.res2.0.shortcut.conv``, ``laterals.0.conv`` ...
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from stad_core.errors import InputFileError, StadError
from stad_core.models.base import VideoBackbone
from stad_core.models.mvit import MVIT_HEAD_PREFIXES, MViTv2, mvit_convert, mvit_family, mvit_source_key
from stad_core.models.resnet3d import SlowFastResNet
from stad_core.models.videomae import (
    VIDEOMAE_HEAD_PREFIXES,
    VIDEOMAE_OPTIONAL,
    VideoMAEViT,
    videomae_family,
    videomae_source_key,
)
from stad_core.models.x3d import X3D, X3D_HEAD_PREFIXES, x3d_family, x3d_source_key

Family = Literal["pyslowfast", "mmaction2", "stad", "videomae", "videomae_pretrain"]

_BLOCK = re.compile(r"^(slow|fast)\.res([2-5])\.(\d+)\.(conv_[abc]|bn_[abc]|shortcut\.conv|shortcut\.bn"
                    r"|non_local\.(?:theta|phi|g|out|bn))\.(\w+)$")
_STEM = re.compile(r"^(slow|fast)\.stem\.(conv|bn)\.(\w+)$")
_LATERAL = re.compile(r"^laterals\.([0-3])\.(conv|bn)\.(\w+)$")

_PSF_BLOCK_PART = {
    "conv_a": "branch2.a", "bn_a": "branch2.a_bn", "conv_b": "branch2.b", "bn_b": "branch2.b_bn",
    "conv_c": "branch2.c", "bn_c": "branch2.c_bn", "shortcut.conv": "branch1", "shortcut.bn": "branch1_bn",
}
_MMA_BLOCK_PART = {
    "conv_a": "conv1.conv", "bn_a": "conv1.bn", "conv_b": "conv2.conv", "bn_b": "conv2.bn",
    "conv_c": "conv3.conv", "bn_c": "conv3.bn", "shortcut.conv": "downsample.conv", "shortcut.bn": "downsample.bn",
    # NonLocalEmbedGauss (stad_core.models.nonlocal_block) -> mmcv's NonLocal3d with sub-sampling
    "non_local.theta": "non_local_block.theta.conv", "non_local.phi": "non_local_block.phi.0.conv",
    "non_local.g": "non_local_block.g.0.conv", "non_local.out": "non_local_block.conv_out.conv",
    "non_local.bn": "non_local_block.conv_out.bn",
}
_HEAD_PREFIXES = ("head.", "roi_head.", "cls_head.")


def pyslowfast_key(key: str) -> str:
    """Our parameter/buffer name -> the PySlowFast ``model_state`` name."""
    if m := _STEM.match(key):
        p = 0 if m[1] == "slow" else 1
        return f"s1.pathway{p}_stem.{m[2]}.{m[3]}"
    if m := _BLOCK.match(key):
        p = 0 if m[1] == "slow" else 1
        return f"s{m[2]}.pathway{p}_res{m[3]}.{_PSF_BLOCK_PART[m[4]]}.{m[5]}"
    if m := _LATERAL.match(key):
        part = "conv_f2s" if m[2] == "conv" else "bn"
        return f"s{int(m[1]) + 1}_fuse.{part}.{m[3]}"
    raise KeyError(f"no PySlowFast name for {key!r}")


def mmaction2_key(key: str, two_pathways: bool) -> str:
    """Our name -> the MMAction2 ``state_dict`` name (``backbone.`` prefix included)."""
    def path(p: str) -> str:
        return f"backbone.{p}_path." if two_pathways else "backbone."

    if m := _STEM.match(key):
        return f"{path(m[1])}conv1.{m[2]}.{m[3]}"
    if m := _BLOCK.match(key):
        return f"{path(m[1])}layer{int(m[2]) - 1}.{m[3]}.{_MMA_BLOCK_PART[m[4]]}.{m[5]}"
    if m := _LATERAL.match(key):
        name = "conv1_lateral" if m[1] == "0" else f"layer{m[1]}_lateral"
        return f"backbone.slow_path.{name}.{m[2]}.{m[3]}"
    raise KeyError(f"no MMAction2 name for {key!r}")


@dataclass
class LoadReport:
    """What a checkpoint import did. ``ok`` means every parameter/buffer of the model was filled."""

    family: str
    model_kind: str = ""  # what was built, e.g. "X3D"
    source_kind: str = ""  # what the file looks like (describe_checkpoint)
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # our keys with no source tensor
    unexpected: list[str] = field(default_factory=list)  # source backbone keys nothing consumed
    shape_mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    head: list[str] = field(default_factory=list)  # source head keys (not part of a backbone)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.shape_mismatched)

    def summary(self) -> str:
        parts = [f"{self.family}: {len(self.loaded)} tensors loaded"]
        for name, items in (("missing", self.missing), ("unexpected", self.unexpected),
                            ("shape-mismatched", self.shape_mismatched)):
            if items:
                parts.append(f"{len(items)} {name} (e.g. {items[0]})")
        if self.head:
            parts.append(f"{len(self.head)} head keys left for the head")
        return "; ".join(parts)

    def check(self, source: str | Path | None = None) -> LoadReport:
        """Raise :class:`CheckpointMismatchError` unless every tensor matched; returns ``self``."""
        if self.ok:
            return self
        where = f"{source}: " if source is not None else ""
        looks = f"; the file looks like {self.source_kind}" if self.source_kind else ""
        raise CheckpointMismatchError(
            f"{where}checkpoint does not fit the {self.model_kind or 'backbone'} built: {self.summary()}{looks} "
            "(build the backbone that matches the file: name, size knobs and family)")


def read_checkpoint(path: str | Path, *, trusted: bool = False) -> dict[str, Tensor]:
    """Read a checkpoint file and return its flat state dict.

    Accepts PySlowFast (``model_state``), MMAction2 (``state_dict``), plain state dicts, and strips
    a DataParallel ``module.`` prefix. ``weights_only`` loading is used unless ``trusted=True``
    (MMAction2 files can hold pickled metadata objects that only a full unpickle reads).
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "checkpoint not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trusted)
    except Exception as exc:  # noqa: BLE001 - torch raises several unpickling error types
        hint = None if trusted else "if you trust this file, load it with trusted=True"
        raise InputFileError(path, f"cannot read checkpoint: {str(exc).splitlines()[0]}", hint=hint) from None
    if isinstance(obj, Mapping):
        for key in ("model_state", "state_dict", "model", "module"):  # module: VideoMAE's DeepSpeed files
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise InputFileError(path, "no state dict found (expected model_state, state_dict or a plain dict of tensors)")
    return {(k[7:] if k.startswith("module.") else k): v for k, v in obj.items()}


@dataclass(frozen=True)
class KeyLayout:
    """How one backbone class's names map to the checkpoint families it imports."""

    kind: str  # e.g. "X3D"
    families: tuple[str, ...]
    detect: Callable[[set[str]], str | None]  # source keys -> family (None: not this kind)
    source_key: Callable[[str, str], str]  # (our key, family) -> source key
    head_prefixes: tuple[str, ...]
    optional: Mapping[str, set[str]] = field(default_factory=dict)  # family -> our keys it may lack
    convert: Callable[[str, Tensor], Tensor] | None = None  # (our key, source tensor) -> our layout


def _slowfast_detect(keys: set[str]) -> str | None:
    if any(k.startswith("s1.pathway0_stem.conv.") for k in keys) and "s1.pathway0_stem.conv_xy.weight" not in keys:
        return "pyslowfast"
    if any(k.startswith(("backbone.slow_path.", "backbone.layer1.0.conv1.conv.")) for k in keys) \
            and "backbone.conv1_s.conv.weight" not in keys:
        return "mmaction2"
    return None


LAYOUTS: dict[type, KeyLayout] = {
    VideoMAEViT: KeyLayout("VideoMAE ViT", ("mmaction2", "videomae", "videomae_pretrain"), videomae_family,
                           videomae_source_key, VIDEOMAE_HEAD_PREFIXES, VIDEOMAE_OPTIONAL),
    X3D: KeyLayout("X3D", ("pyslowfast", "mmaction2"), x3d_family, x3d_source_key, X3D_HEAD_PREFIXES),
    MViTv2: KeyLayout("MViT v2", ("pyslowfast", "mmaction2"), mvit_family, mvit_source_key, MVIT_HEAD_PREFIXES,
                      convert=mvit_convert),
}
_SLOWFAST_KIND = "SlowFast/SlowOnly ResNet"


def register_layout(cls: type, layout: KeyLayout) -> None:
    """Add the key layout of another backbone class (new families register themselves here)."""
    LAYOUTS[cls] = layout


def describe_checkpoint(state: Mapping[str, Tensor]) -> str:
    """What the keys look like, in words (e.g. ``"X3D (pyslowfast names)"``), for error messages."""
    keys = set(state)
    for layout in LAYOUTS.values():
        if (fam := layout.detect(keys)) is not None:
            return f"{layout.kind} ({fam} names)"
    if (fam := _slowfast_detect(keys)) is not None:
        return f"{_SLOWFAST_KIND} ({fam} names)"
    first = next(iter(sorted(keys)), "none")
    return f"an unknown layout (first key {first!r})"


def _layout_of(model: VideoBackbone) -> KeyLayout | None:
    for cls, layout in LAYOUTS.items():
        if isinstance(model, cls):
            return layout
    return None


def detect_family(state: Mapping[str, Tensor], model: VideoBackbone | None = None) -> Family:
    """Guess the key layout from the names (for ``model``'s kind when given; SlowFast otherwise)."""
    layout = _layout_of(model) if model is not None else None
    if layout is not None:
        return layout.detect(set(state)) or "stad"  # type: ignore[return-value]
    if any(k.startswith("s1.pathway0_stem.") for k in state):
        return "pyslowfast"
    if any(k.startswith("backbone.") for k in state):
        return "mmaction2"
    return "stad"


class CheckpointMismatchError(StadError):
    """A checkpoint that does not fit the backbone (wrong family, size or architecture)."""


def load_backbone_checkpoint(
    model: VideoBackbone,
    source: str | Path | Mapping[str, Tensor],
    family: Family | None = None,
    *,
    trusted: bool = False,
) -> LoadReport:
    """Copy a checkpoint (PySlowFast / MMAction2 / VideoMAE / stad names) into ``model`` and report the key match.

    Only tensors whose names and shapes match are copied; BN ``num_batches_tracked`` counters
    absent from the source are not reported missing (older checkpoints lack them). Build the model
    with the matching family's conventions (``build_backbone(..., family=...)``) so the import is exact.
    ``report.check()`` turns a partial match into a :class:`CheckpointMismatchError` that names
    what the file looks like.
    """
    state = read_checkpoint(source, trusted=trusted) if isinstance(source, (str, Path)) else dict(source)
    layout = _layout_of(model)
    family = family or detect_family(state, model)
    optional: set[str] = set()
    if layout is not None:
        head_prefixes = layout.head_prefixes
        optional = set(layout.optional.get(family, set()))
        fam = family

        def rename(k: str) -> str:
            return layout.source_key(k, fam)
    elif family == "pyslowfast":
        rename, head_prefixes = pyslowfast_key, _HEAD_PREFIXES
    elif family == "mmaction2":
        two = isinstance(model, SlowFastResNet) and model.fast is not None
        head_prefixes = _HEAD_PREFIXES

        def rename(k: str) -> str:
            return mmaction2_key(k, two)
    else:
        head_prefixes = _HEAD_PREFIXES

        def rename(k: str) -> str:
            return k

    report = LoadReport(family=family, model_kind=layout.kind if layout else _SLOWFAST_KIND,
                        source_kind=describe_checkpoint(state))
    report.head = sorted(k for k in state if k.startswith(head_prefixes))
    consumed: set[str] = set()
    own = model.state_dict()
    new_state: dict[str, Tensor] = {}
    for key, tensor in own.items():
        try:
            src = rename(key)
        except (KeyError, ValueError):
            src = None
        if src is None or src not in state:
            if not key.endswith("num_batches_tracked") and key not in optional:
                report.missing.append(key)
            continue
        consumed.add(src)
        value = state[src]
        if layout is not None and layout.convert is not None:
            value = layout.convert(key, value)
        if tuple(value.shape) != tuple(tensor.shape):
            report.shape_mismatched.append((key, tuple(value.shape), tuple(tensor.shape)))
            continue
        new_state[key] = value.to(tensor.dtype)
        report.loaded.append(key)
    report.unexpected = sorted(
        k for k in state if k not in consumed and not k.startswith(head_prefixes)
        and not k.endswith("num_batches_tracked")
    )
    model.load_state_dict(new_state, strict=False)
    return report


def head_weights(state: Mapping[str, Tensor], family: Family) -> tuple[Tensor, Tensor] | None:
    """The linear action classifier ``(weight [K, D], bias [K])`` stored with a checkpoint, if any.

    MMAction2's AVA head has a background row 0 (``num_classes=81``); it is dropped so row ``i``
    is action id ``i + 1`` as in PySlowFast.
    """
    if family == "pyslowfast" and "head.projection.weight" in state:
        return state["head.projection.weight"], state["head.projection.bias"]
    if family == "mmaction2" and "roi_head.bbox_head.fc_cls.weight" in state:
        w, b = state["roi_head.bbox_head.fc_cls.weight"], state["roi_head.bbox_head.fc_cls.bias"]
        return w[1:], b[1:]
    return None

"""Box conversions and geometry: the one place that knows how boxes are laid out.

Boxes are ``[..., 4]`` arrays in ``x1, y1, x2, y2`` order, top-left origin. "Normalised" boxes
are fractions of the frame width/height in ``[0, 1]`` (the AVA convention); "pixel" boxes are in
pixels of a ``width x height`` frame. Every function accepts a numpy array or a torch tensor and
returns the same kind (integer inputs come back as floating point where the result is fractional).

IoU follows the continuous convention used by the AVA evaluation: ``inter / (area_a + area_b -
inter)`` with areas ``(x2 - x1) * (y2 - y1)`` -- no ``+1`` pixel offsets.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

if TYPE_CHECKING:
    import torch

# torch is not imported here: importing it costs seconds and ~600 MB RSS, and CSV readers that
# use these helpers must stay light. A tensor can only exist if torch was imported already.
BoxArray = TypeVar("BoxArray", np.ndarray, "torch.Tensor")

#: Slack allowed around ``[0, 1]`` before a normalised coordinate counts as out of range. Real
#: annotation tools and detectors round to 3 decimals and can step a hair outside the frame.
BOX_TOLERANCE = 1e-3


def _is_tensor(x: Any) -> bool:
    torch_module = sys.modules.get("torch")
    return torch_module is not None and isinstance(x, torch_module.Tensor)


def _torch() -> Any:
    return sys.modules["torch"]


def _check_last_dim(boxes: np.ndarray | torch.Tensor) -> None:
    if boxes.ndim == 0 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must have shape [..., 4] (x1, y1, x2, y2), got {tuple(boxes.shape)}")


def _as_float(boxes: BoxArray) -> BoxArray:
    """Promote integer boxes to float (float64 for numpy, the default dtype for torch)."""
    if _is_tensor(boxes):
        return boxes if boxes.is_floating_point() else boxes.to(_torch().get_default_dtype())
    boxes = np.asarray(boxes)
    return boxes if np.issubdtype(boxes.dtype, np.floating) else boxes.astype(np.float64)


def _coerce(boxes: np.ndarray | torch.Tensor | list) -> np.ndarray | torch.Tensor:
    if not isinstance(boxes, np.ndarray) and not _is_tensor(boxes):
        boxes = np.asarray(boxes, dtype=np.float64)
    if isinstance(boxes, np.ndarray) and boxes.ndim == 1 and boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    _check_last_dim(boxes)
    return boxes


def _scale(boxes: BoxArray, width: float, height: float, *, inverse: bool) -> BoxArray:
    if width <= 0 or height <= 0:
        raise ValueError(f"frame size must be positive, got width={width}, height={height}")
    boxes = _as_float(_coerce(boxes))
    factors = [width, height, width, height]
    if _is_tensor(boxes):
        scale = _torch().tensor(factors, dtype=boxes.dtype, device=boxes.device)
    else:
        scale = np.asarray(factors, dtype=boxes.dtype)
    return boxes / scale if inverse else boxes * scale


def normalized_to_pixels(boxes: BoxArray, width: float, height: float) -> BoxArray:
    """``[..., 4]`` normalised xyxy -> pixel xyxy of a ``width x height`` frame (no rounding)."""
    return _scale(boxes, width, height, inverse=False)


def pixels_to_normalized(boxes: BoxArray, width: float, height: float) -> BoxArray:
    """``[..., 4]`` pixel xyxy of a ``width x height`` frame -> normalised xyxy (no clipping)."""
    return _scale(boxes, width, height, inverse=True)


def xyxy_to_xywh(boxes: BoxArray) -> BoxArray:
    """``[..., 4]`` x1, y1, x2, y2 -> x1, y1, width, height (same units)."""
    boxes = _as_float(_coerce(boxes))
    out = boxes.clone() if _is_tensor(boxes) else boxes.copy()
    out[..., 2:] = boxes[..., 2:] - boxes[..., :2]
    return out


def xywh_to_xyxy(boxes: BoxArray) -> BoxArray:
    """``[..., 4]`` x1, y1, width, height -> x1, y1, x2, y2 (same units)."""
    boxes = _as_float(_coerce(boxes))
    out = boxes.clone() if _is_tensor(boxes) else boxes.copy()
    out[..., 2:] = boxes[..., :2] + boxes[..., 2:]
    return out


def box_area(boxes: BoxArray) -> BoxArray:
    """Areas ``[...]`` of ``[..., 4]`` xyxy boxes; inverted boxes (x2 < x1 or y2 < y1) have area 0."""
    boxes = _as_float(_coerce(boxes))
    w = boxes[..., 2] - boxes[..., 0]
    h = boxes[..., 3] - boxes[..., 1]
    if _is_tensor(boxes):
        return w.clamp(min=0) * h.clamp(min=0)
    return np.clip(w, 0, None) * np.clip(h, 0, None)


def box_iou(a: BoxArray, b: BoxArray) -> BoxArray:
    """Pairwise IoU ``[N, M]`` of ``a [N, 4]`` and ``b [M, 4]`` xyxy boxes.

    ``IoU = inter / (area_a + area_b - inter)``; pairs whose union is empty (two degenerate
    boxes) get IoU 0 rather than NaN.
    """
    a = _as_float(_coerce(a))
    b = _as_float(_coerce(b))
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"box_iou expects [N, 4] and [M, 4], got {tuple(a.shape)} and {tuple(b.shape)}")
    if _is_tensor(a) != _is_tensor(b):
        raise TypeError("box_iou: pass two numpy arrays or two torch tensors, not a mix")
    area_a = box_area(a)
    area_b = box_area(b)
    if _is_tensor(a):
        lt = _torch().maximum(a[:, None, :2], b[None, :, :2])
        rb = _torch().minimum(a[:, None, 2:], b[None, :, 2:])
        wh = (rb - lt).clamp(min=0)
        inter = wh[..., 0] * wh[..., 1]
        union = area_a[:, None] + area_b[None, :] - inter
        return _torch().where(union > 0, inter / union.clamp(min=_torch().finfo(union.dtype).tiny), 0.0)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union > 0)
    return out


def clip_boxes(boxes: BoxArray, width: float = 1.0, height: float = 1.0) -> BoxArray:
    """Clip ``[..., 4]`` xyxy boxes to ``[0, width] x [0, height]`` (default: the normalised frame)."""
    boxes = _as_float(_coerce(boxes))
    hi = [width, height, width, height]
    if _is_tensor(boxes):
        upper = _torch().tensor(hi, dtype=boxes.dtype, device=boxes.device)
        return _torch().minimum(boxes.clamp(min=0), upper)
    return np.minimum(np.clip(boxes, 0, None), np.asarray(hi, dtype=boxes.dtype))


def finite_boxes(boxes: BoxArray) -> BoxArray:
    """``[...]`` bool: all four coordinates are finite (not NaN/inf)."""
    boxes = _coerce(boxes)
    if _is_tensor(boxes):
        return _torch().isfinite(boxes).all(dim=-1)
    return np.isfinite(boxes).all(axis=-1)


def ordered_boxes(boxes: BoxArray) -> BoxArray:
    """``[...]`` bool: ``x1 <= x2`` and ``y1 <= y2`` (zero-width/height boxes count as ordered)."""
    boxes = _coerce(boxes)
    return (boxes[..., 0] <= boxes[..., 2]) & (boxes[..., 1] <= boxes[..., 3])


def boxes_in_unit_range(boxes: BoxArray, tol: float = BOX_TOLERANCE) -> BoxArray:
    """``[...]`` bool: every coordinate lies in ``[-tol, 1 + tol]``."""
    boxes = _coerce(boxes)
    inside = (boxes >= -tol) & (boxes <= 1 + tol)
    return inside.all(dim=-1) if _is_tensor(boxes) else inside.all(axis=-1)


def valid_normalized_boxes(boxes: BoxArray, tol: float = BOX_TOLERANCE) -> BoxArray:
    """``[...]`` bool: finite, ordered (``x1 <= x2``, ``y1 <= y2``) and inside ``[0, 1]`` +- ``tol``.

    Vectorised; NaN coordinates fail every comparison, so they are invalid too.
    """
    return finite_boxes(boxes) & ordered_boxes(boxes) & boxes_in_unit_range(boxes, tol)

from __future__ import annotations

import numpy as np
import pytest
import torch

from stad_core.boxes import (
    box_area,
    box_iou,
    boxes_in_unit_range,
    clip_boxes,
    normalized_to_pixels,
    ordered_boxes,
    pixels_to_normalized,
    valid_normalized_boxes,
    xywh_to_xyxy,
    xyxy_to_xywh,
)


def test_normalized_pixels_round_trip_numpy_and_torch() -> None:
    norm = np.array([[0.0, 0.0, 1.0, 1.0], [0.25, 0.5, 0.75, 1.0]])
    px = normalized_to_pixels(norm, 340, 256)
    np.testing.assert_allclose(px, [[0, 0, 340, 256], [85, 128, 255, 256]])
    np.testing.assert_allclose(pixels_to_normalized(px, 340, 256), norm)
    t = normalized_to_pixels(torch.tensor(norm, dtype=torch.float32), 340, 256)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    torch.testing.assert_close(t, torch.tensor(px, dtype=torch.float32))


def test_integer_pixel_boxes_become_float() -> None:
    out = pixels_to_normalized(np.array([[10, 20, 30, 40]]), 100, 200)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, [[0.1, 0.1, 0.3, 0.2]])
    assert pixels_to_normalized(torch.tensor([[10, 20, 30, 40]]), 100, 200).is_floating_point()


def test_bad_shapes_and_sizes_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"\[\.\.\., 4\]"):
        box_area(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="positive"):
        normalized_to_pixels(np.zeros((1, 4)), 0, 10)


def test_area_and_iou_against_hand_computed_values() -> None:
    a = np.array([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 3.0]])
    b = np.array([[1.0, 0.0, 3.0, 2.0], [5.0, 5.0, 6.0, 6.0], [0.0, 0.0, 2.0, 2.0]])
    np.testing.assert_allclose(box_area(a), [4.0, 4.0])
    iou = box_iou(a, b)
    assert iou.shape == (2, 3)
    # a0 vs b0: overlap 1x2 = 2, union 4 + 4 - 2 = 6 (no +1 pixel convention)
    np.testing.assert_allclose(iou[0], [2 / 6, 0.0, 1.0])
    # a1 vs b0: overlap x 1..3, y 1..2 -> 2, union 6 ; a1 vs b2: overlap 1 -> 1/7
    np.testing.assert_allclose(iou[1], [2 / 6, 0.0, 1 / 7])
    t = box_iou(torch.tensor(a), torch.tensor(b))
    torch.testing.assert_close(t, torch.tensor(iou))


def test_degenerate_boxes_have_zero_area_and_iou_not_nan() -> None:
    inverted = np.array([[0.5, 0.5, 0.2, 0.9]])
    point = np.array([[0.3, 0.3, 0.3, 0.3]])
    assert box_area(inverted)[0] == 0.0
    assert box_iou(point, point)[0, 0] == 0.0
    assert not torch.isnan(box_iou(torch.tensor(point), torch.tensor(point))).any()
    assert box_iou(np.zeros((0, 4)), np.ones((2, 4))).shape == (0, 2)


def test_clip_and_validity_checks() -> None:
    boxes = np.array(
        [
            [-0.2, 0.1, 1.3, 0.9],  # outside the frame
            [0.1, 0.1, 0.5, 0.5],  # fine
            [0.6, 0.1, 0.5, 0.5],  # x1 > x2
            [0.1, np.nan, 0.5, 0.5],  # NaN
            [-0.0005, 0.0, 1.0005, 1.0],  # within the tolerance
        ]
    )
    np.testing.assert_allclose(clip_boxes(boxes[:2]), [[0.0, 0.1, 1.0, 0.9], [0.1, 0.1, 0.5, 0.5]])
    np.testing.assert_allclose(clip_boxes(np.array([[-5.0, 3, 400, 300]]), 340, 256), [[0, 3, 340, 256]])
    assert valid_normalized_boxes(boxes).tolist() == [False, True, False, False, True]
    assert ordered_boxes(boxes).tolist()[:3] == [True, True, False]
    assert boxes_in_unit_range(boxes, tol=0.0).tolist() == [False, True, True, False, False]
    assert valid_normalized_boxes(torch.tensor(boxes)).tolist() == [False, True, False, False, True]


def test_xywh_conversions() -> None:
    xyxy = np.array([[1.0, 2.0, 4.0, 6.0]])
    np.testing.assert_allclose(xyxy_to_xywh(xyxy), [[1, 2, 3, 4]])
    np.testing.assert_allclose(xywh_to_xyxy(xyxy_to_xywh(xyxy)), xyxy)
    assert xyxy[0, 2] == 4.0  # inputs are not modified

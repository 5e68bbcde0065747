"""Person detection: torchvision builders + local weights, person filtering and the keep-top-box
rule, proposals/GT adapters, detector fine-tuning and person AP@0.5."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from stad_core.ava import read_ava_csv
from stad_core.ava.keys import KeyframeKey
from stad_core.ava.proposals import KeyframeDetections
from stad_core.detection import (
    DetectConfig,
    DetectionSample,
    DetectorTrainConfig,
    PersonDetector,
    average_precision,
    build_detector,
    cached_weights_path,
    finetune_detector,
    groundtruth_boxes,
    imported_proposals,
    person_ap,
    person_boxes,
    save_detector,
)
from stad_core.errors import ConfigError, InputFileError, StadError
from stad_core.video import encode_video


def _kd(video: str, t: int, boxes, scores=None) -> KeyframeDetections:
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.ones(len(boxes)) if scores is None else scores
    return KeyframeDetections(KeyframeKey(video, t), boxes, scores)


def test_person_boxes_filtering_and_keep_top_box() -> None:
    out = {
        "boxes": torch.tensor([[0, 0, 50, 100], [10, 10, 60, 90], [5, 5, 20, 20], [0, 0, 200, 100]], dtype=torch.float32),
        "labels": torch.tensor([1, 1, 3, 1]),  # label 3 (car in COCO) is dropped
        "scores": torch.tensor([0.5, 0.95, 0.99, 0.3]),
    }
    boxes, scores = person_boxes(out, (100, 200), score_threshold=0.6, keep_top_box=True)
    np.testing.assert_allclose(scores, [0.95])
    np.testing.assert_allclose(boxes, [[0.05, 0.1, 0.3, 0.9]])
    boxes, scores = person_boxes(out, (100, 200), score_threshold=0.99, keep_top_box=True)
    np.testing.assert_allclose(scores, [0.95])  # below threshold, kept as the top box
    boxes, scores = person_boxes(out, (100, 200), score_threshold=0.99, keep_top_box=False)
    assert boxes.shape == (0, 4) and scores.shape == (0,)
    boxes, _ = person_boxes(out, (100, 200), score_threshold=0.0, keep_top_box=False)
    assert boxes.shape == (3, 4) and boxes.max() <= 1.0


def test_person_ap_hand_computed() -> None:
    gt = {KeyframeKey("v", 1): _kd("v", 1, [[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]]),
          KeyframeKey("v", 2): _kd("v", 2, [[0.2, 0.2, 0.4, 0.6]])}
    perfect = {k: KeyframeDetections(k, g.boxes, np.array([0.9] * len(g))) for k, g in gt.items()}
    assert person_ap(perfect, gt).ap == pytest.approx(1.0)
    # ranked: TP(0.9), FP duplicate of the same box (0.8), FP elsewhere (0.7), TP (0.6); 3 GT boxes
    dets = {KeyframeKey("v", 1): _kd("v", 1, [[0, 0, 0.5, 0.5], [0.01, 0, 0.5, 0.5], [0.6, 0, 0.9, 0.3]],
                                     np.array([0.9, 0.8, 0.7])),
            KeyframeKey("v", 2): _kd("v", 2, [[0.2, 0.2, 0.4, 0.6]], np.array([0.6])),
            KeyframeKey("v", 9): _kd("v", 9, [[0, 0, 1, 1]], np.array([0.99]))}  # unannotated: ignored
    res = person_ap(dets, gt)
    # precision at recall 1/3 = 1, at 2/3 = 2/4 -> AP = 1/3 * 1 + 1/3 * 0.5
    assert res.ap == pytest.approx(0.5) and res.recall == pytest.approx(2 / 3)
    assert res.num_detections == 4 and res.num_groundtruth == 3
    assert "AP@0.5 = 50.0" in str(res)
    assert average_precision(np.array([]), np.array([])) == 0.0


def test_build_detector_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="unknown detector"):
        build_detector("yolo9000")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    name = "fasterrcnn_mobilenet_v3_large_320_fpn"
    expected = tmp_path / "torch" / "hub" / "checkpoints" / "fasterrcnn_mobilenet_v3_large_320_fpn-907ea3f9.pth"
    assert cached_weights_path(name) == expected
    with pytest.raises(StadError, match="never downloads") as err:
        build_detector(name, weights="cache")
    assert str(expected) in str(err.value)
    with pytest.raises(InputFileError, match="not found"):
        build_detector(name, weights=tmp_path / "nope.pth")
    model = build_detector(name)
    expected.parent.mkdir(parents=True)
    torch.save(model.state_dict(), expected)
    loaded = build_detector(name, weights="cache")
    key = "roi_heads.box_predictor.cls_score.weight"
    torch.testing.assert_close(loaded.state_dict()[key], model.state_dict()[key])
    assert loaded.state_dict()[key].shape[0] == 91  # COCO layout; person = 1
    with pytest.raises(InputFileError, match="do not fit"):
        build_detector(name, weights=expected, num_classes=2)


def test_proposals_and_groundtruth_adapters(shared_data: Path) -> None:
    pkl = shared_data / "mmaction2" / "tests_data_ava_dataset_ava_proposals_sample.pkl"
    props = imported_proposals(pkl, score_threshold=0.9, keep_top_box=True)
    assert props and all(len(d) >= 1 for d in props.values())  # keep-top-box: no keyframe emptied
    everything = imported_proposals(pkl, score_threshold=0.0)
    assert sum(len(d) for d in everything.values()) >= sum(len(d) for d in props.values())
    table = read_ava_csv(shared_data / "edgeface" / "ava_val_v2.2_head342_fixed.csv", kind="groundtruth")
    gt = groundtruth_boxes(table)
    first = gt[KeyframeKey("1j20qq1JyX4", 902)]
    assert first.source == "groundtruth" and (first.scores == 1).all()
    # one box per person, however many action rows it has
    assert len(first) == len({tuple(b) for b in first.boxes.round(3).tolist()})
    # ...each with the person id of the file's first row for that box
    rows = np.flatnonzero((table.video_id == "1j20qq1JyX4") & (table.timestamp == 902))
    want = {}
    for r in rows:
        want.setdefault(tuple(table.boxes[r].astype(np.float32).tolist()), int(table.person_id[r]))
    assert first.person_ids.tolist() == [want[tuple(b)] for b in first.boxes.tolist()]
    assert (first.person_ids >= 0).all()


def _rect_images(n: int, seed: int) -> list[DetectionSample]:
    """Dark 96x96 images with 1-2 bright upright 'persons' (rectangles) each."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        img = np.full((96, 96, 3), 30, np.uint8)
        boxes = []
        for _ in range(int(rng.integers(1, 3))):
            w, h = int(rng.integers(12, 20)), int(rng.integers(30, 48))
            x, y = int(rng.integers(0, 96 - w)), int(rng.integers(0, 96 - h))
            img[y:y + h, x:x + w] = (220, 200, 180)
            boxes.append([x / 96, y / 96, (x + w) / 96, (y + h) / 96])
        out.append(DetectionSample(torch.from_numpy(img), np.array(boxes, np.float32)))
    return out


def test_finetune_tiny_detector_and_detect_on_video(tmp_path: Path) -> None:
    torch.manual_seed(0)
    train = _rect_images(24, seed=0)
    model = build_detector("tiny_fasterrcnn", min_size=96, max_size=96)
    history = finetune_detector(model, train, DetectorTrainConfig(epochs=5, batch_size=4, lr=0.02, warmup_iters=5))
    assert history[-1] < history[0]
    path = save_detector(tmp_path / "det.pt", model, "tiny_fasterrcnn")
    config = DetectConfig(detector="tiny_fasterrcnn", weights=str(path), score_threshold=0.05, batch_size=4,
                          min_size=96, max_size=96)
    detector = PersonDetector.from_config(config)
    # Inference through the video path: one test image per second of a 1 fps video.
    test = _rect_images(6, seed=1)
    video = encode_video(tmp_path / "rects.mp4", np.stack([s.image.numpy() for s in test]), fps=1)
    found = detector.detect_keyframes(video, "rects", range(6), batch_size=4)
    assert [d.key.timestamp for d in found] == list(range(6)) and all(d.source == "tiny_fasterrcnn" for d in found)
    gt = {KeyframeKey("rects", t): KeyframeDetections(KeyframeKey("rects", t), s.boxes, np.ones(len(s.boxes)))
          for t, s in enumerate(test)}
    ap = person_ap({d.key: d for d in found}, gt)
    assert ap.num_groundtruth == sum(len(s.boxes) for s in test)
    assert ap.ap > 0.3, str(ap)

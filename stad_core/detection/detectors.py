"""Person detectors from torchvision's detection builders, restricted to the person class.

Weights come from a local file or the torch cache (``$TORCH_HOME/hub/checkpoints/<published name>``)
and are never downloaded: a missing file is an error that names the exact path to put it at.
Both label layouts in use put the person at label 1: COCO (91 classes, ``person = 1``) for the
published weights, and ``background, person`` (2 classes) for detectors fine-tuned here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn
from torchvision.models import detection as tvd
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import MultiScaleRoIAlign

from stad_core.ava.keys import KeyframeKey
from stad_core.ava.proposals import KeyframeDetections
from stad_core.config import StageConfig
from stad_core.errors import ConfigError, InputFileError, StadError
from stad_core.progress import ProgressFn, report

PERSON_LABEL = 1
COCO_CLASSES = 91

DetectorName = Literal[
    "fasterrcnn_resnet50_fpn_v2", "fasterrcnn_resnet50_fpn", "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_mobilenet_v3_large_320_fpn", "retinanet_resnet50_fpn_v2", "fcos_resnet50_fpn", "tiny_fasterrcnn",
]


class TinyBackbone(nn.Sequential):
    """Four 3x3 conv+BN+ReLU layers, stride 8, ``out_channels`` maps: a CPU-trainable detector body."""

    def __init__(self, out_channels: int = 64) -> None:
        layers: list[nn.Module] = []
        c_in = 3
        for c_out, stride in ((16, 2), (32, 2), (out_channels, 2), (out_channels, 1)):
            layers += [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            c_in = c_out
        super().__init__(*layers)
        self.out_channels = out_channels


def tiny_fasterrcnn(num_classes: int = 2, min_size: int = 128, max_size: int = 320, **kwargs: Any) -> tvd.FasterRCNN:
    """Faster R-CNN on :class:`TinyBackbone` with person-shaped anchors (height/width 1-3).

    Proposal and RoI-sampling budgets are cut (300/100 proposals, 128 RoIs per image, a 256-d box
    head) so that a training step costs tens of milliseconds on a CPU at 160x128.
    """
    backbone = TinyBackbone()
    settings: dict[str, Any] = dict(
        rpn_anchor_generator=AnchorGenerator(sizes=((16, 32, 64, 128),), aspect_ratios=((1.0, 2.0, 3.0),)),
        box_roi_pool=MultiScaleRoIAlign(["0"], 7, 2),
        box_head=TwoMLPHead(backbone.out_channels * 7 * 7, 256),
        box_predictor=FastRCNNPredictor(256, num_classes),
        rpn_pre_nms_top_n_train=600, rpn_post_nms_top_n_train=300,
        rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=100,
        box_batch_size_per_image=128, min_size=min_size, max_size=max_size,
    )
    settings.update(kwargs)
    return tvd.FasterRCNN(backbone, num_classes=None, **settings)


@dataclass(frozen=True)
class DetectorEntry:
    builder: Callable[..., nn.Module]
    weights: Any | None  # torchvision weights enum member (for the published file name only)


DETECTORS: dict[str, DetectorEntry] = {
    "fasterrcnn_resnet50_fpn_v2": DetectorEntry(tvd.fasterrcnn_resnet50_fpn_v2,
                                                tvd.FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1),
    "fasterrcnn_resnet50_fpn": DetectorEntry(tvd.fasterrcnn_resnet50_fpn, tvd.FasterRCNN_ResNet50_FPN_Weights.COCO_V1),
    "fasterrcnn_mobilenet_v3_large_fpn": DetectorEntry(tvd.fasterrcnn_mobilenet_v3_large_fpn,
                                                       tvd.FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1),
    "fasterrcnn_mobilenet_v3_large_320_fpn": DetectorEntry(tvd.fasterrcnn_mobilenet_v3_large_320_fpn,
                                                           tvd.FasterRCNN_MobileNet_V3_Large_320_FPN_Weights.COCO_V1),
    "retinanet_resnet50_fpn_v2": DetectorEntry(tvd.retinanet_resnet50_fpn_v2, tvd.RetinaNet_ResNet50_FPN_V2_Weights.COCO_V1),
    "fcos_resnet50_fpn": DetectorEntry(tvd.fcos_resnet50_fpn, tvd.FCOS_ResNet50_FPN_Weights.COCO_V1),
    "tiny_fasterrcnn": DetectorEntry(tiny_fasterrcnn, None),
}


def cached_weights_path(name: str) -> Path:
    """Where the published COCO weights of ``name`` are expected in the torch cache."""
    entry = DETECTORS[name]
    if entry.weights is None:
        raise ConfigError(f"detector {name!r} has no published weights; pass a fine-tuned checkpoint path")
    return Path(torch.hub.get_dir()) / "checkpoints" / entry.weights.url.rsplit("/", 1)[-1]


def _read_state(path: Path) -> dict[str, Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise InputFileError(path, f"cannot read detector weights: {str(exc).splitlines()[0]}") from None
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict):
        raise InputFileError(path, "not a state dict")
    return obj


def build_detector(
    name: DetectorName | str,
    weights: str | Path | Literal["cache"] | None = None,
    num_classes: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a detection model with random init, then load local weights if asked.

    Args:
        weights: ``None`` (random init, for training), a state-dict path (a torchvision ``.pth`` or a
            checkpoint of :func:`~stad_core.detection.training.save_detector`), or ``"cache"`` for the
            published COCO file in the torch cache.
        num_classes: 91 (COCO layout) by default for torchvision models, 2 for ``tiny_fasterrcnn``.
        kwargs: passed to the torchvision builder (e.g. ``min_size``, ``box_score_thresh``).
    """
    if name not in DETECTORS:
        raise ConfigError(f"unknown detector {name!r}; choose from {', '.join(DETECTORS)}")
    if num_classes is None:
        num_classes = 2 if name == "tiny_fasterrcnn" else COCO_CLASSES
    if name == "tiny_fasterrcnn":
        model = tiny_fasterrcnn(num_classes=num_classes, **kwargs)
    else:
        model = DETECTORS[name].builder(weights=None, weights_backbone=None, num_classes=num_classes, **kwargs)
    if weights is None:
        return model
    if weights == "cache":
        path = cached_weights_path(name)
        if not path.is_file():
            url = DETECTORS[name].weights.url
            raise StadError(
                f"weights for detector {name!r} not found at {path}: stad never downloads at run time. "
                f"Fetch {url} on a machine with network access and copy it to that path "
                f"(the torch cache: $TORCH_HOME/hub/checkpoints), or pass weights=PATH."
            )
    else:
        path = Path(weights)
        if not path.is_file():
            raise InputFileError(path, f"detector weights for {name!r} not found",
                                 hint=f"put the state dict there, or use weights='cache' ({cached_weights_path(name) if DETECTORS[name].weights else 'no published file'})")
    state = _read_state(path)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or mismatched:
        raise InputFileError(path, f"weights do not fit {name} with {num_classes} classes: missing {missing[:3]}, "
                                   f"unexpected {unexpected[:3]}, shape-mismatched {mismatched[:3]}")
    model.load_state_dict(state)
    return model


class DetectConfig(StageConfig):
    """Settings of keyframe person detection."""

    detector: str = Field("fasterrcnn_resnet50_fpn_v2", description="a name in DETECTORS")
    weights: str | None = Field("cache", description="'cache', a state-dict path, or null (random init; tests only)")
    num_classes: int | None = Field(None, description="91 for COCO weights; 2 for person-only fine-tuned ones")
    score_threshold: float = Field(0.8, ge=0.0, le=1.0, description="keep person boxes scoring >= this")
    keep_top_box: bool = Field(True, description="always keep a keyframe's best box, even below the threshold")
    batch_size: int = Field(8, ge=1, description="keyframes per forward pass")
    short_side: int | None = Field(None, ge=16, description="resize frames to this short side before decoding output")
    min_size: int | None = Field(None, ge=16, description="detector's internal resize (null: the model's default)")
    max_size: int | None = Field(None, ge=16, description="detector's internal max side (null: the model's default)")


def person_boxes(
    output: dict[str, Tensor], image_size: tuple[int, int], score_threshold: float, keep_top_box: bool,
    person_label: int = PERSON_LABEL,
) -> tuple[np.ndarray, np.ndarray]:
    """One torchvision detection output -> person ``(boxes [N, 4] normalised float32, scores [N])``.

    Sorted by score; ``keep_top_box`` keeps the best person box even when below the threshold.
    """
    h, w = image_size
    keep = output["labels"] == person_label
    boxes, scores = output["boxes"][keep].float().cpu(), output["scores"][keep].float().cpu()
    order = torch.argsort(scores, descending=True)
    boxes, scores = boxes[order], scores[order]
    if len(scores):
        threshold = min(score_threshold, float(scores[0])) if keep_top_box else score_threshold
        sel = scores >= threshold
        boxes, scores = boxes[sel], scores[sel]
    boxes = (boxes / torch.tensor([w, h, w, h], dtype=torch.float32)).clamp_(0.0, 1.0)
    return boxes.numpy(), scores.numpy()


class PersonDetector:
    """A detection model plus the person-box rules; batched keyframe inference on a given device."""

    def __init__(self, model: nn.Module, *, score_threshold: float = 0.8, keep_top_box: bool = True,
                 person_label: int = PERSON_LABEL, device: str | torch.device = "cpu", name: str = "detector") -> None:
        self.model = model.eval().to(device)
        self.score_threshold = score_threshold
        self.keep_top_box = keep_top_box
        self.person_label = person_label
        self.device = torch.device(device)
        self.name = name

    @classmethod
    def from_config(cls, config: DetectConfig, device: str | torch.device = "cpu") -> PersonDetector:
        # Low model-side threshold: our own threshold and the keep-top-box rule decide.
        sizes = {k: v for k, v in (("min_size", config.min_size), ("max_size", config.max_size)) if v is not None}
        model = build_detector(config.detector, config.weights, config.num_classes, box_score_thresh=0.01, **sizes)
        return cls(model, score_threshold=config.score_threshold, keep_top_box=config.keep_top_box,
                   device=device, name=config.detector)

    @torch.no_grad()
    def detect_images(self, images: Tensor | Sequence[Tensor]) -> list[tuple[np.ndarray, np.ndarray]]:
        """uint8 images ``[B, H, W, 3]`` (or a list of ``[H, W, 3]``) -> per image (boxes, scores)."""
        batch = [img.to(self.device).permute(2, 0, 1).float().div_(255.0) for img in images]
        outputs = self.model(batch)
        return [
            person_boxes(out, tuple(img.shape[1:]), self.score_threshold, self.keep_top_box, self.person_label)
            for out, img in zip(outputs, batch, strict=True)
        ]

    def detect_keyframes(
        self,
        video_path: str | Path,
        video_id: str,
        timestamps: Sequence[int],
        *,
        batch_size: int = 8,
        short_side: int | None = None,
        on_progress: ProgressFn | None = None,
    ) -> list[KeyframeDetections]:
        """Detect persons on the frame nearest to each keyframe second of one video."""
        from stad_core.video import decode_frames_at  # PyAV import kept off the module path

        results: list[KeyframeDetections] = []
        stamps = list(timestamps)
        for start in range(0, len(stamps), batch_size):
            chunk = stamps[start:start + batch_size]
            frames = decode_frames_at(video_path, [float(t) for t in chunk], short_side=short_side)
            for t, (boxes, scores) in zip(chunk, self.detect_images(frames), strict=True):
                results.append(KeyframeDetections(KeyframeKey(video_id, int(t)), boxes, scores, self.name))
            report(on_progress, min(start + batch_size, len(stamps)), len(stamps))
        return results

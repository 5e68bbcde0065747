"""Training checkpoints with an exact-resume contract.

A checkpoint holds everything the next optimizer step depends on: model and optimizer state, the
schedule position (the global step -- the LR is a pure function of it), the epoch and the position
inside it (batches already taken from that epoch's order), the torch / numpy / python RNG states
(and CUDA's when training on a GPU), the epoch history, and the config with its hash. Files are
written under a temporary name and renamed, so an interruption never leaves a half-written file;
they load with ``torch.load(weights_only=True)`` (no pickled code).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stad_core.atomic import atomic_write
from stad_core.errors import StadError

CHECKPOINT_VERSION = 1


@dataclass
class EpochRecord:
    """One finished epoch: mean training loss, last LR, validation frame-mAP (None: no validation)."""

    epoch: int
    train_loss: float
    lr: float
    val_map: float | None = None
    val_class_ap: dict[int, float] = field(default_factory=dict)


@dataclass
class RNGState:
    torch_cpu: torch.Tensor
    numpy: dict[str, Any]
    python: tuple
    torch_cuda: list[torch.Tensor] = field(default_factory=list)

    @classmethod
    def capture(cls) -> RNGState:
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        return cls(
            torch_cpu=torch.get_rng_state(),
            numpy={"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                   "has_gauss": int(has_gauss), "cached": float(cached)},
            python=random.getstate(),
            torch_cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        )

    def restore(self) -> None:
        torch.set_rng_state(self.torch_cpu)
        n = self.numpy
        np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
        version, internal, gauss = self.python
        random.setstate((version, tuple(internal), gauss))
        if self.torch_cuda:
            torch.cuda.set_rng_state_all(self.torch_cuda)


@dataclass
class Checkpoint:
    config: dict[str, Any]
    config_hash: str
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    epoch: int
    step_in_epoch: int
    global_step: int
    rng: RNGState
    history: list[EpochRecord]
    epoch_loss_sum: float = 0.0
    #: the logit columns' action ids and the pose ids (``ClassSpace``), so a checkpoint alone can predict
    action_ids: list[int] = field(default_factory=list)
    pose_ids: list[int] = field(default_factory=list)
    version: int = CHECKPOINT_VERSION


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> Path:
    """Write ``checkpoint`` atomically (:func:`stad_core.atomic.atomic_write`) and return its path."""
    payload = asdict(checkpoint)
    payload["rng"] = {**payload["rng"], "python": list(payload["rng"]["python"])}
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`."""
    path = Path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise StadError(f"{path}: checkpoint not found") from None
    except Exception as exc:  # noqa: BLE001 - any unpickling problem means "not our checkpoint"
        raise StadError(f"{path}: not a readable stad training checkpoint ({exc})") from None
    if not isinstance(data, dict) or data.get("version") != CHECKPOINT_VERSION:
        raise StadError(f"{path}: not a stad training checkpoint of version {CHECKPOINT_VERSION}")
    rng = data["rng"]
    python = rng["python"]
    return Checkpoint(
        config=data["config"],
        config_hash=data["config_hash"],
        model=data["model"],
        optimizer=data["optimizer"],
        epoch=data["epoch"],
        step_in_epoch=data["step_in_epoch"],
        global_step=data["global_step"],
        rng=RNGState(rng["torch_cpu"], rng["numpy"], (python[0], tuple(python[1]), python[2]), rng["torch_cuda"]),
        history=[EpochRecord(**h) for h in data["history"]],
        epoch_loss_sum=data["epoch_loss_sum"],
        action_ids=list(data["action_ids"]),
        pose_ids=list(data["pose_ids"]),
        version=data["version"],
    )

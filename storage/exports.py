"""Exported backbones: the weights extract builds its backbone from.

A finetune output holds ``backbone.pt`` (the state dict) and ``backbone.json`` (architecture name,
constructor knobs, output channels, the weights' sha256). The sha256 is what bank specs record as
``checkpoint_sha256`` and what downstream identities include.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from stad_core.atomic import atomic_write, atomic_write_text
from stad_core.models import VideoBackbone, build_backbone
from storage.uri import join, local_path
from storage.workspace import read_text

BACKBONE = "backbone.pt"
BACKBONE_INFO = "backbone.json"


def sha256_file(path: str | Path) -> str:
    """sha256 of a local file's bytes (hex)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def build_configured_backbone(name: str, knobs: dict[str, Any]) -> VideoBackbone:
    """``build_backbone(name, **knobs)`` with JSON lists turned back into the tuples it takes."""
    return build_backbone(name, **{k: tuple(v) if isinstance(v, list) else v for k, v in knobs.items()})


def save_backbone(folder: str, backbone: VideoBackbone, name: str, knobs: dict[str, Any]) -> dict[str, Any]:
    """Write ``backbone.pt`` then ``backbone.json`` into ``folder``; returns the info written."""
    out = local_path(folder)
    atomic_write(out / BACKBONE, lambda tmp: torch.save(backbone.state_dict(), tmp))
    info = {"backbone": name, "knobs": knobs, "sha256": sha256_file(out / BACKBONE),
            "out_channels": int(backbone.out_channels)}
    atomic_write_text(out / BACKBONE_INFO, json.dumps(info, indent=1))
    return info


def backbone_info(folder: str) -> dict[str, Any]:
    """Architecture (name, knobs), output channels and sha256 of the backbone exported in ``folder``."""
    return json.loads(read_text(join(folder, BACKBONE_INFO)))


def load_backbone(folder: str) -> tuple[VideoBackbone, dict[str, Any]]:
    """The backbone exported in ``folder`` (eval mode, CPU) and its info."""
    info = backbone_info(folder)
    backbone = build_configured_backbone(info["backbone"], info["knobs"])
    backbone.load_state_dict(torch.load(local_path(join(folder, BACKBONE)), map_location="cpu", weights_only=True))
    return backbone.eval(), info


def cached_backbone(folder: str) -> VideoBackbone:
    """``load_backbone(folder)[0]``, kept per process (keyed by the weights' hash too: a forced
    finetune rewrites the same folder)."""
    return _cached(folder, backbone_info(folder)["sha256"])


@lru_cache(maxsize=2)
def _cached(folder: str, sha256: str) -> VideoBackbone:
    return load_backbone(folder)[0]

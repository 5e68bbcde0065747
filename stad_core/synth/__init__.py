"""Synthetic STAD dataset: procedurally rendered videos of stick-figure actors with exact AVA-format
ground truth for 12 classes in three groups (short-term, relational, long-term).

See ``docs/synthetic.md`` for the world model and the exact rule of every class.
"""

from __future__ import annotations

from stad_core.synth.classes import CLASSES, GROUPS, ActionClass
from stad_core.synth.config import PRESETS, SynthConfig, preset_config
from stad_core.synth.generate import GENERATOR_VERSION, SynthSummary, check_target, generate_dataset, render_video
from stad_core.synth.planner import plan_world
from stad_core.synth.rules import KeyframeLabels, label_keyframe
from stad_core.synth.world import World

__all__ = [
    "CLASSES",
    "GENERATOR_VERSION",
    "GROUPS",
    "PRESETS",
    "ActionClass",
    "KeyframeLabels",
    "SynthConfig",
    "SynthSummary",
    "World",
    "check_target",
    "generate_dataset",
    "label_keyframe",
    "plan_world",
    "preset_config",
    "render_video",
]

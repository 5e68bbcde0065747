"""Head variants: the names the pipeline, the benchmarks and the reports give to heads.

A variant is a head plus the settings that tell it apart from its siblings (``lfb_max`` is the
LFB head with max-pooling FBO). ``variant_fields`` turns a name into those ``TrainConfig``
settings; ``variant_name`` gives a trained config's name back (no need to store or re-derive it).
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from stad_core.errors import ConfigError
from stad_core.heads.architecture import HeadName
from stad_core.heads.lfb import FBOName

HeadVariant = Literal["linear", "acrn", "lfb_avg", "lfb_max", "lfb_nl", "acar", "acfb"]

#: Every variant, in the order tables list them.
HEAD_VARIANTS: tuple[HeadVariant, ...] = get_args(HeadVariant)

_FIELDS: dict[HeadVariant, dict[str, Any]] = {
    "linear": {"head": "linear"},
    "acrn": {"head": "acrn"},
    "lfb_avg": {"head": "lfb", "fbo": "avg"},
    "lfb_max": {"head": "lfb", "fbo": "max"},
    "lfb_nl": {"head": "lfb", "fbo": "nl"},
    "acar": {"head": "acar"},
    "acfb": {"head": "acfb"},
}
assert tuple(_FIELDS) == HEAD_VARIANTS


def variant_fields(name: str) -> dict[str, Any]:
    """The ``TrainConfig`` settings that pick variant ``name`` (``"lfb_max"`` -> head lfb, fbo max)."""
    if name not in _FIELDS:
        raise ConfigError(f"unknown head variant {name!r}; expected one of {', '.join(HEAD_VARIANTS)}")
    return dict(_FIELDS[name])  # type: ignore[index]


def variant_name(head: HeadName, fbo: FBOName) -> HeadVariant:
    """The variant a head with these settings is (``("lfb", "max")`` -> ``"lfb_max"``; fbo only names LFB)."""
    return f"lfb_{fbo}" if head == "lfb" else head  # type: ignore[return-value]

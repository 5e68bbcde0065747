"""Which evaluation rules apply: the official AVA protocols and the re-implementations' variants.

Every difference between evaluators that changes a number is one field of :class:`EvalRules`, so
the core in :mod:`stad_core.evaluation.frame_map` is one code path with switches, and
``docs/evaluation.md`` can say exactly which switch each codebase flips.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from stad_core.errors import StadError

Protocol = Literal["2019", "2020"]
Variant = Literal["official", "mmaction2", "pyslowfast"]

PROTOCOLS: tuple[str, ...] = ("2019", "2020")
VARIANTS: tuple[str, ...] = ("official", "mmaction2", "pyslowfast")


@dataclass(frozen=True)
class EvalRules:
    """The rule set of one evaluator.

    Attributes:
        protocol: ``"2019"`` keys keyframes on the integer second (``int(timestamp)``) and uses an
            exclusions file; ``"2020"`` keys on the fractional timestamp (to the microsecond),
            takes no exclusions and only scores keyframes listed in the ground-truth file.
        variant: ``"official"``, or the codebase whose rules these are.
        top_k: keep at most this many detections per keyframe across classes (official: 50,
            applied in file order with the heap rule); None keeps all.
        drop_degenerate: detections with ``x2 <= x1`` or ``y2 <= y1`` are dropped (official);
            otherwise they stay and can only be false positives.
        float32: boxes and scores are rounded to float32 before matching and ranking
            (MMAction2 >= 1.1 builds its arrays with ``dtype=np.float32``).
        match_in_file_order: within a keyframe and class, detections claim ground truth in file
            order instead of by descending score (PySlowFast never sorts them).
        unknown_keyframes: what detections on keyframes without (whitelisted) ground truth are:
            ``"fp"`` (official 2019), ``"ignore_unlisted"`` (2020: ignored unless the keyframe is
            listed in the ground-truth file, then false positives) or ``"ignore"`` (MMAction2).
        count_excluded_gt: ground truth on excluded keyframes still counts in the number of
            positives per class (MMAction2 counts every ground-truth row it read).
        only_detected_classes: only classes with at least one evaluated detection get an AP
            (MMAction2); otherwise every label-map class with ground truth does.
    """

    protocol: Protocol = "2019"
    variant: Variant = "official"
    top_k: int | None = 50
    drop_degenerate: bool = True
    float32: bool = False
    match_in_file_order: bool = False
    unknown_keyframes: Literal["fp", "ignore_unlisted", "ignore"] = "fp"
    count_excluded_gt: bool = False
    only_detected_classes: bool = False


def rules_for(protocol: str = "2019", variant: str = "official", *, top_k: int | None = 50) -> EvalRules:
    """The rule set for a protocol and variant (``top_k`` only applies to the official rules).

    Raises:
        StadError: unknown protocol/variant, or a variant combined with protocol 2020 (both
            re-implementations only know the 2019 keyframe keys).
    """
    if protocol not in PROTOCOLS:
        raise StadError(f"unknown protocol {protocol!r} (choose one of {', '.join(PROTOCOLS)})")
    if variant not in VARIANTS:
        raise StadError(f"unknown variant {variant!r} (choose one of {', '.join(VARIANTS)})")
    if top_k is not None and top_k < 1:
        raise StadError(f"top_k must be a positive number of detections per keyframe, got {top_k}")
    if variant != "official" and protocol != "2019":
        raise StadError(f"variant {variant!r} reproduces a protocol-2019 evaluator; use --protocol 2019")
    if variant == "mmaction2":
        return EvalRules(
            protocol="2019",
            variant="mmaction2",
            top_k=None,
            drop_degenerate=False,
            float32=True,
            unknown_keyframes="ignore",
            count_excluded_gt=True,
            only_detected_classes=True,
        )
    if variant == "pyslowfast":
        return EvalRules(protocol="2019", variant="pyslowfast", top_k=None, match_in_file_order=True)
    if protocol == "2020":
        return EvalRules(protocol="2020", top_k=top_k, unknown_keyframes="ignore_unlisted")
    return EvalRules(protocol="2019", top_k=top_k)

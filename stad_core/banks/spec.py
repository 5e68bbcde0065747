"""Identity of a bank: its kind, its feature dtype and the :class:`BankSpec` that must match for
rows to be comparable (and :class:`BankError`, raised by every bank operation that cannot be done)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from stad_core.errors import StadError

BankKind = Literal["long_term", "context", "actor_context", "fine"]
BankDtype = Literal["float16", "float32"]
#: Kinds that store actor rows (the others store context maps). A ``fine`` bank's row is one
#: feature step of a whole video (stad_core.temporal.fine_bank).
ROW_KINDS: tuple[BankKind, ...] = ("long_term", "actor_context", "fine")
SCHEMA_VERSION = 1


class BankError(StadError):
    """A feature bank cannot do what was asked (bad spec, bad rows, unknown video, ...)."""


class BankSpec(BaseModel):
    """Identity of a bank: everything that must match for rows to be comparable.

    Stored in the bank's root attributes; appending with a different spec is refused with
    :meth:`diff`'s list of differing fields. ``dtype`` is the one source of truth for the
    stored feature dtype: arrays are created with it and writes are checked against it
    (:func:`stad_core.banks.check_rows`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: BankKind
    feature_dim: int = Field(gt=0)
    dtype: BankDtype = "float16"
    backbone: str
    checkpoint_sha256: str
    roi_recipe: str = "roi_align7_tavg_smax"
    #: Pooling grid (h, w) of context maps; required for ``kind="context"``, None otherwise.
    context_grid: tuple[int, int] | None = None
    clip_num_frames: int = Field(32, gt=0)
    clip_stride: int = Field(2, gt=0)
    detector_source: str = "gt"
    detector_threshold: float = 0.0
    code_version: str = "0.1.0"
    schema_version: int = SCHEMA_VERSION

    @model_validator(mode="after")
    def _grid_matches_kind(self) -> BankSpec:
        if self.kind == "context":
            if self.context_grid is None or min(self.context_grid) <= 0:
                raise ValueError("a context bank needs context_grid=(h, w) with h, w > 0")
        elif self.context_grid is not None:
            raise ValueError(f"context_grid is only for context banks, not {self.kind!r}")
        return self

    def diff(self, other: BankSpec) -> list[str]:
        """Names of fields whose values differ, formatted ``name: mine != theirs``."""
        mine, theirs = self.model_dump(), other.model_dump()
        return [f"{k}: {mine[k]!r} != {theirs[k]!r}" for k in mine if mine[k] != theirs[k]]

    def to_attrs(self) -> dict[str, Any]:
        """JSON-safe dict for zarr attributes."""
        return self.model_dump(mode="json")

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> BankSpec:
        data = dict(attrs)
        if data.get("context_grid") is not None:
            data["context_grid"] = tuple(data["context_grid"])
        return cls.model_validate(data)

    @property
    def numpy_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

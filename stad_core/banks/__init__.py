"""Feature banks as seen by the rest of stad: spec, value types, Protocols, window sampling.

The zarr implementation lives in ``storage.banks``; this package is numpy/pydantic only so that
heads, trainers and tests can work against :class:`FeatureBankReader` and pass a :class:`DictBank`.

Modules::

    spec.py        BankSpec (the bank's identity and its one feature dtype), BankKind, BankError
    rows.py        ActorRows, ContextMaps (what a video stores), COLUMN_DTYPES, keyframe lookup
    checks.py      check_rows / check_context: the write rule every bank applies
    window.py      SecondIndex, plan_window, BankWindow, WindowBatch (long-term window sampling)
    protocols.py   FeatureBankReader, FeatureBankWriter
    dict_bank.py   DictBank (in memory, for tests)

Conventions (defined once, here):

* A row is one actor at one keyframe: ``features[D]`` (the spec's dtype), ``boxes[4]``
  (normalised xyxy, float32), ``score``, ``timestamp`` (keyframe seconds, float64), ``person_id``
  (int64, -1 unknown).
* The spec's ``dtype`` is the one source of truth for stored features: arrays are created with it
  and a write whose features/maps come in another dtype is refused (:mod:`stad_core.banks.checks`).
* Rows are kept sorted by timestamp. A row belongs to the **second** ``floor(timestamp)``.
* The long-term window of keyframe ``t`` (width ``w``, ``K`` rows per second) covers the ``w``
  seconds ``[floor(t) - w//2, floor(t) - w//2 + w)`` -- for w=60 and t=902: 872..931. Each second
  contributes its rows if it has at most K, else a random subset of K (kept in time order).
  Empty slots are *masked*, never silently zero-padded: ``mask`` is False there (features are 0).
* Training draws the subsets from the caller's ``rng``; evaluation draws them from a generator
  seeded by :func:`eval_seed` ``(video_id, t)`` so the same keyframe always sees the same window.
* One window per keyframe: all actors of a keyframe share it (LFB samples per clip).
"""

from __future__ import annotations

from stad_core.banks.checks import check_context, check_rows
from stad_core.banks.dict_bank import DictBank
from stad_core.banks.protocols import FeatureBankReader, FeatureBankWriter
from stad_core.banks.rows import COLUMN_DTYPES, TIME_TOLERANCE, ActorRows, ContextMaps, find_keyframe, sort_rows
from stad_core.banks.spec import ROW_KINDS, SCHEMA_VERSION, BankDtype, BankError, BankKind, BankSpec
from stad_core.banks.window import (
    BankWindow,
    SecondIndex,
    WindowBatch,
    assemble_window,
    eval_seed,
    plan_window,
    second_index,
    stack_windows,
    window_rng,
    window_seconds,
)

__all__ = [
    "COLUMN_DTYPES",
    "ROW_KINDS",
    "SCHEMA_VERSION",
    "TIME_TOLERANCE",
    "ActorRows",
    "BankDtype",
    "BankError",
    "BankKind",
    "BankSpec",
    "BankWindow",
    "ContextMaps",
    "DictBank",
    "FeatureBankReader",
    "FeatureBankWriter",
    "SecondIndex",
    "WindowBatch",
    "assemble_window",
    "check_context",
    "check_rows",
    "eval_seed",
    "find_keyframe",
    "plan_window",
    "second_index",
    "sort_rows",
    "stack_windows",
    "window_rng",
    "window_seconds",
]

"""ACFB stage core: run a trained ACAR head over every keyframe and emit actor-context rows.

For each video of the actor bank, every keyframe's actors go through ``ACARHead.actor_context_features``
(first-order actor-context maps averaged over space, [R, E]); the rows keep the actor bank's boxes,
scores, timestamps and person ids, so the actor-context bank is row-aligned with the actor bank.
The caller (the ``acfb`` flow) writes them to a bank of kind ``actor_context`` with feature_dim E.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from stad_core.banks import ActorRows
from stad_core.heads import ACARHead
from stad_core.progress import ProgressFn, report
from stad_core.train.data import BankSet, Sample, _keyframe_groups, make_batch


@torch.no_grad()
def infer_actor_context(
    head: ACARHead,
    banks: BankSet,
    *,
    videos: Sequence[str] | None = None,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    on_progress: ProgressFn | None = None,
) -> Iterator[tuple[str, ActorRows]]:
    """Yield ``(video_id, rows)`` with rows.features [R, E] float32 for every video (one at a time)."""
    names = sorted(banks.actors.videos()) if videos is None else list(videos)
    was_training = head.training
    head.eval()
    try:
        for done, video in enumerate(names):
            rows = banks.actors.read_video(video)
            times, _, count = _keyframe_groups(rows.timestamps)
            samples = [Sample(video, t, np.arange(n)) for t, n in zip(times.tolist(), count.tolist())]
            parts: list[np.ndarray] = []
            for start in range(0, len(samples), batch_size):
                batch = make_batch(samples[start : start + batch_size], banks, head, window_width=1,
                                   window_per_second=1, training=False, device=device)
                parts.append(head.actor_context_features(batch.inputs).float().cpu().numpy())
            features = np.concatenate(parts) if parts else np.zeros((0, head.latent_dim), np.float32)
            yield video, ActorRows(features, rows.boxes, rows.scores, rows.timestamps, rows.person_ids,
                                   f"acfb:{rows.source}")
            report(on_progress, done + 1, len(names))
    finally:
        head.train(was_training)

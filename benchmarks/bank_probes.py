"""What do a demo workspace's banks hold? The probes behind docs/heads.md ("What limited the demo").

    python benchmarks/bank_probes.py --work demo-data        # a `stad demo` workspace (its latest outputs)

Each probe is a logistic regression on bank rows (standardised with the train rows' statistics, Adam
1e-2, 300 full-batch steps) fitted on train rows and scored on val rows, printed with its chance level:

* short-term: AP of each short-term class from the rows, and from the box geometry alone;
* alarm flash rows: "this row's clip overlaps the flash" (is the evidence of ``alerted`` in the bank?);
* window pooling: per val keyframe, the window's max and mean of the frame-redness column
  (``roi_appearance``) as a score for ``alerted`` (what max / avg pooling can find);
* facing: the facing of still actors and the direction of travel of walkers (what ``listen_to``,
  ``watch`` and ``follow`` need), from the world the generator planned.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import torch

from stad_core.evaluation.ap import precision_recall, voc_average_precision
from stad_core.synth.config import SynthConfig
from stad_core.synth.planner import plan_world
from stad_core.train.data import training_samples
from stad_core.train.labels import group_ground_truth
from storage.stages.train import load_dataset, open_banks
from storage.workspace import Workspace


def ap(scores: np.ndarray, labels: np.ndarray) -> float:
    if labels.sum() == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    p, r = precision_recall(labels[order].astype(bool), int(labels.sum()))
    return voc_average_precision(p, r)


def probe(xtr: np.ndarray, ytr: np.ndarray, xva: np.ndarray) -> np.ndarray:
    """Scores ``[N_val, K]`` of a logistic probe fitted on ``xtr [N, D]``, ``ytr [N, K]``."""
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-3
    torch.manual_seed(0)
    lin = torch.nn.Linear(xtr.shape[1], ytr.shape[1])
    opt = torch.optim.Adam(lin.parameters(), lr=1e-2, weight_decay=1e-3)
    a, b = torch.from_numpy((xtr - mu) / sd).float(), torch.from_numpy(ytr).float()
    for _ in range(300):
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(lin(a), b).backward()
        opt.step()
    with torch.no_grad():
        return lin(torch.from_numpy((xva - mu) / sd).float()).numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True, help="a stad demo / pipeline workspace (synthetic data)")
    args = p.parse_args()
    torch.set_num_threads(2)
    ws = Workspace(str(args.work))
    data, banks = load_dataset(ws.latest("ingest"), "bank probes"), open_banks(ws.latest("extract"))
    synth = Path(ws.latest("synth").uri)
    config = SynthConfig(**json.loads((synth / "config.json").read_text()))
    names = {i: data.labelmap.names.get(i, str(i)) for i in data.classes.action_ids}
    dim = banks.actors.spec.feature_dim
    print(f"bank {banks.actors.spec.roi_recipe}, {dim}-d rows")

    split: dict[str, tuple] = {}
    for name in ("train", "val"):
        samples = training_samples(banks.actors, group_ground_truth(data.trainable(name), data.classes))
        rows = [banks.actors.rows_at(s.video_id, s.timestamp).take(s.rows) for s in samples]
        x = np.concatenate([np.asarray(r.features, np.float32) for r in rows])
        b = np.concatenate([r.boxes for r in rows]).astype(np.float32)
        geo = np.c_[b, np.log((b[:, 3] - b[:, 1]) / (b[:, 2] - b[:, 0]))]
        split[name] = (samples, x, geo, np.concatenate([s.labels for s in samples]).astype(np.float32))
    (_, xtr, gtr, ytr), (sva, xva, gva, yva) = split["train"], split["val"]
    short = [k for k, i in enumerate(data.classes.action_ids) if data.labelmap.label_types.get(i) == "SHORT_TERM"]
    for what, a, b in (("rows", xtr, xva), ("box geometry", gtr, gva)):
        s = probe(a, ytr[:, short], b)
        aps = [ap(s[:, j], yva[:, k]) for j, k in enumerate(short)]
        print(f"short-term from {what:12s}: mean AP {np.mean(aps):.3f}  "
              + " ".join(f"{names[data.classes.action_ids[k]]} {v:.2f}" for k, v in zip(short, aps, strict=True)))

    alarms: dict[str, tuple[float, float]] = {}
    with open(synth / "annotations" / "events.csv") as f:
        for row in csv.DictReader(f):
            if row["kind"] == "alarm":
                alarms[row["video_id"]] = (float(row["t0"]), float(row["t1"]))
    half = banks.actors.spec.clip_num_frames * banks.actors.spec.clip_stride / config.fps / 2
    xs, ys, vs, facing, travel = [], [], [], [], []
    for vid in banks.actors.videos():
        index = int(vid.rsplit("_", 1)[1])
        rows = banks.actors.read_video(vid)
        f, t = np.asarray(rows.features, np.float32), rows.timestamps
        a = alarms.get(vid)
        ys.append(np.zeros(len(t)) if a is None else ((t + half > a[0]) & (t - half < a[1])).astype(float))
        xs.append(f)
        vs.append(np.full(len(t), config.is_val(index)))
        world = plan_world(config, index)
        for k in range(len(t)):
            state = {s.actor_id: s for s in world.states(float(t[k]))}.get(int(rows.person_ids[k]))
            if state is None:
                continue
            moving = state.pose in ("walk", "run") and state.vx != 0
            target = facing if not moving else travel
            right = state.vx > 0 if moving else state.facing > 0
            target.append((f[k], float(right), config.is_val(index)))
    x, y, v = np.concatenate(xs), np.concatenate(ys), np.concatenate(vs)
    s = probe(x[~v], y[~v, None], x[v])[:, 0]
    print(f"alarm flash rows: val AP {ap(s, y[v]):.3f} (chance {y[v].mean():.3f}; {int(y[~v].sum())} train / "
          f"{int(y[v].sum())} val rows)")

    if banks.actors.spec.roi_recipe.endswith("_rgb"):
        w = banks.actors.gather_windows([(q.video_id, q.timestamp) for q in sva], width=60, per_second=5,
                                        training=False)
        red = w.features[..., -3].astype(np.float32)  # the frame's mean R (roi_appearance's column 4 of 6)
        column = [names[i] for i in data.classes.action_ids].index("alerted")
        alerted = np.array([q.labels[:, column].max() for q in sva])
        mx = np.where(w.mask, red, -np.inf).max(1)
        mean = np.where(w.mask, red, 0).sum(1) / np.maximum(w.mask.sum(1), 1)
        print(f"alerted from the window's frame redness, per val keyframe: max {ap(mx, alerted):.3f}, "
              f"mean {ap(mean, alerted):.3f} (chance {alerted.mean():.3f})")

    for what, items in (("facing of still actors", facing), ("direction of travel", travel)):
        f = np.stack([i[0] for i in items])
        t = np.array([i[1] for i in items])
        val = np.array([i[2] for i in items])
        s = probe(f[~val], t[~val, None], f[val])[:, 0]
        print(f"{what}: val accuracy {((s > 0) == (t[val] > 0.5)).mean():.3f} (chance 0.5; {int(val.sum())} val rows)")


if __name__ == "__main__":
    main()

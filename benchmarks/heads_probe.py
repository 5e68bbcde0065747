"""What do the long-term bank's rows encode? Probes behind the heads benchmark's diagnosis.

    python benchmarks/heads_probe.py --data /tmp/hb/data --bank-dir /tmp/hb/work/<tag>/banks

For each question a head needs answered, a cheap probe on the bank rows (train rows fit, val rows
scored), printed with its chance level:

* identity (LFB-NL / ACFB on ``has_key``): for each val row, its nearest row (cosine) at least 10 s
  away in the same video -- how often is it the same person?
* key pickup (``has_key`` evidence): a logistic probe for "this row is the picker during its pickup".
* alarm flash (``alerted`` evidence): a logistic probe for "this row's clip overlaps the flash".
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from stad_core.evaluation.ap import precision_recall, voc_average_precision


def _events(path: Path) -> dict[str, dict[str, list[tuple[float, float, str]]]]:
    out: dict[str, dict[str, list[tuple[float, float, str]]]] = defaultdict(lambda: defaultdict(list))
    with open(path) as f:
        for row in csv.DictReader(f):
            out[row["video_id"]][row["kind"]].append((float(row["t0"]), float(row["t1"]), row["actors"]))
    return out


def _ap(scores: np.ndarray, labels: np.ndarray) -> float:
    if labels.sum() == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    p, r = precision_recall(labels[order].astype(bool), int(labels.sum()))
    return voc_average_precision(p, r)


def _rows(bank, events, clip_half: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]]:
    feats, pickup, flash, per_video = [], [], [], []
    for vid in bank.videos():
        rows = bank.read_video(vid)
        f = np.asarray(rows.features, np.float32)
        t, pid = rows.timestamps, rows.person_ids
        pk = np.zeros(len(t), bool)
        for t0, t1, actors in events[vid].get("key_pickup", []):
            who = {int(a) for a in actors.split(";") if a != ""} if actors else set()
            pk |= (t + clip_half > t0) & (t - clip_half < t1) & np.isin(pid, list(who))
        fl = np.zeros(len(t), bool)
        for a0, a1, _ in events[vid].get("alarm", []):
            fl |= (t + clip_half > a0) & (t - clip_half < a1)
        feats.append(f)
        pickup.append(pk)
        flash.append(fl)
        per_video.append((vid, f, t, pid))
    return np.concatenate(feats), np.concatenate(pickup), np.concatenate(flash), per_video


def _probe(xtr: np.ndarray, ytr: np.ndarray, xva: np.ndarray, yva: np.ndarray, epochs: int = 300) -> float:
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    a, b = torch.from_numpy((xtr - mu) / sd), torch.from_numpy(ytr.astype(np.float32))
    lin = torch.nn.Linear(a.shape[1], 1)
    opt = torch.optim.Adam(lin.parameters(), lr=1e-2, weight_decay=1e-3)
    pos = torch.tensor(max(1.0, float((1 - ytr).sum() / max(ytr.sum(), 1))))
    for _ in range(epochs):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(lin(a)[:, 0], b, pos_weight=pos)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        s = lin(torch.from_numpy((xva - mu) / sd))[:, 0].numpy()
    return _ap(s, yva)


def main() -> None:
    from storage import open_bank

    p = argparse.ArgumentParser()
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--bank-dir", type=Path, required=True)
    p.add_argument("--clip-half", type=float, default=0.8, help="half the clip length in seconds")
    args = p.parse_args()
    torch.set_num_threads(2)
    events = _events(args.data / "annotations" / "events.csv")
    tr = open_bank(str(args.bank_dir / "train_long_term"), "r")
    va = open_bank(str(args.bank_dir / "val_long_term"), "r")
    xtr, pktr, fltr, _ = _rows(tr, events, args.clip_half)
    xva, pkva, flva, per_video = _rows(va, events, args.clip_half)

    same, chance, n = 0, 0.0, 0
    for _, f, t, pid in per_video:
        fn = f / (np.linalg.norm(f, axis=1, keepdims=True) + 1e-6)
        sim = fn @ fn.T
        far = np.abs(t[:, None] - t[None, :]) >= 10
        sim[~far] = -np.inf
        ok = far.any(1)
        nn_idx = sim.argmax(1)
        same += int((pid[nn_idx] == pid)[ok].sum())
        n += int(ok.sum())
        for i in np.flatnonzero(ok):
            chance += float((pid[far[i]] == pid[i]).mean())
    print(f"identity: nearest row >= 10 s away is the same person for {100 * same / n:.1f}% of val rows "
          f"(chance {100 * chance / n:.1f}%)")
    print(f"key pickup probe: val AP {100 * _probe(xtr, pktr, xva, pkva):.1f} (chance {100 * pkva.mean():.2f}; "
          f"{int(pktr.sum())} train / {int(pkva.sum())} val positive rows)")
    print(f"alarm flash probe: val AP {100 * _probe(xtr, fltr, xva, flva):.1f} (chance {100 * flva.mean():.2f}; "
          f"{int(fltr.sum())} train / {int(flva.sum())} val positive rows)")


if __name__ == "__main__":
    main()

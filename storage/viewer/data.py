"""What the viewer shows, read from a workspace (never written): stage outputs, banks, keyframes,
neighbours, evaluations, the results history. Every path it takes is workspace-relative and is
refused (``OutsideWorkspace``) when it resolves outside the workspace."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from stad_core.errors import StadError
from storage.workspace import StageRef, Workspace


class OutsideWorkspace(StadError):
    """A requested path that is not inside the workspace (or does not exist there)."""


@dataclass(frozen=True)
class View:
    """A workspace opened for reading."""

    root: Path

    @classmethod
    def open(cls, root: str | Path) -> View:
        path = Path(root).expanduser().resolve()
        if not path.is_dir():
            raise StadError(f"{root} is not a folder")
        return cls(path)

    @property
    def ws(self) -> Workspace:
        return Workspace(self.root)

    def inside(self, relative: str) -> Path:
        """``relative`` resolved inside the workspace; refuses anything that leaves it (``..``,
        absolute paths, symlinks pointing out) or does not exist."""
        if not relative or "\x00" in relative:
            raise OutsideWorkspace("empty path")
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root):
            raise OutsideWorkspace(f"{relative!r} is outside the workspace")
        if not path.exists():
            raise OutsideWorkspace(f"{relative!r} does not exist in the workspace")
        return path

    def rel(self, path: str | Path) -> str:
        return str(Path(path).resolve().relative_to(self.root))

    # -- stage outputs ------------------------------------------------------------------------

    def outputs(self) -> list[StageRef]:
        """Every complete stage output, newest first."""
        return self.ws.history()

    def output(self, relative: str) -> tuple[StageRef, dict[str, Any] | None, str, list[str]]:
        """A stage output's record, its config (and where it was read from) and its files."""
        folder = self.inside(relative)
        ref = self.ws.read_ref(self.rel(folder))
        if ref is None:
            raise OutsideWorkspace(f"{relative!r} is not a complete stage output")
        config, source = None, ""
        if (folder / "config.json").is_file():
            config, source = json.loads((folder / "config.json").read_text()), "config.json"
        else:
            config, source = _known_config(ref)
        files = sorted(self.rel(p) for p in folder.rglob("*") if p.is_file() and ".zarr" not in str(p.relative_to(folder))
                       and not p.name.startswith("."))[:200]
        return ref, config, source, files

    # -- banks --------------------------------------------------------------------------------

    def banks(self) -> list[str]:
        from storage.browse import find_banks

        return [self.rel(p) for p in find_banks(self.root, max_depth=4)]

    def bank(self, relative: str) -> Any:
        from storage.banks import open_bank

        return open_bank(str(self.inside(relative)), "r")

    def bank_summary(self, relative: str) -> dict[str, Any]:
        from storage.browse import bank_summary

        bank = self.bank(relative)
        summary = bank_summary(bank)
        return {"spec": bank.spec.model_dump(mode="json"), "codec": bank.codec, "rows": summary.rows,
                "raw": summary.raw_bytes, "stored": summary.stored_bytes, "ratio": summary.ratio,
                "videos": summary.videos, "incomplete": summary.incomplete, "stale": summary.stale}

    def extract_of(self, bank_relative: str) -> StageRef | None:
        """The stage output (extract or acfb) that holds a bank."""
        folder = self.inside(bank_relative).parent
        return self.ws.read_ref(self.rel(folder))

    def video_rows(self, bank_relative: str, video_id: str) -> Any:
        return self.bank(bank_relative).read_video(video_id)

    def video_file(self, bank_relative: str, video_id: str) -> tuple[Path, float] | None:
        """The video file and time offset of a bank's video (through its extract's ingest manifest)."""
        from storage.stages.ingest import dataset_of, videos_of

        ref = self.extract_of(bank_relative)
        if ref is None or "ingest" not in ref.upstream:
            extract = ref and ref.upstream.get("extract")
            ref = self.ws.find("extract", extract) if extract else None
        if ref is None:
            return None
        ingest = self.ws.find("ingest", ref.upstream["ingest"])
        for entry in videos_of(ingest):
            if entry.video_id == video_id:
                return Path(entry.path), float(dataset_of(ingest).time_offset)
        return None

    def keyframe(self, bank_relative: str, video_id: str, t: float) -> dict[str, Any]:
        """Boxes of a keyframe with ground-truth and predicted actions (newest evaluation of this bank)."""
        rows = self.video_rows(bank_relative, video_id)
        sel = np.nonzero(np.isclose(rows.timestamps, t))[0]
        names = self.label_names(bank_relative)
        gt = self.groundtruth(bank_relative, video_id, t)
        predicted = self.predictions(bank_relative, video_id, t)
        people = []
        for i in sel:
            box = rows.boxes[i].astype(float)
            people.append({
                "row": int(i), "box": [round(float(v), 4) for v in box], "person": int(rows.person_ids[i]),
                "score": float(rows.scores[i]),
                "gt": sorted({names.get(a, str(a)) for b, a in gt if _iou(box, b) >= 0.5}),
                "predicted": [(names.get(a, str(a)), s) for b, a, s in
                              sorted(((b, a, s) for b, a, s in predicted if _iou(box, b) >= 0.99),
                                     key=lambda x: -x[2])[:3]],
            })
        return {"video": video_id, "t": t, "people": people}

    def label_names(self, bank_relative: str) -> dict[int, str]:
        from stad_core.ava import read_labelmap
        from storage.stages.ingest import dataset_of

        ref = self._extract_ref(bank_relative)
        if ref is None:
            return {}
        try:
            files = dataset_of(self.ws.find("ingest", ref.upstream["ingest"]))
            return dict(read_labelmap(files.labelmap).names) if files.labelmap else {}
        except (StadError, OSError):
            return {}

    def _extract_ref(self, bank_relative: str) -> StageRef | None:
        ref = self.extract_of(bank_relative)
        if ref is not None and ref.stage == "acfb":
            ref = self.ws.find("extract", ref.upstream["extract"])
        return ref

    def groundtruth(self, bank_relative: str, video_id: str, t: float) -> list[tuple[np.ndarray, int]]:
        from storage.stages.ingest import dataset_of

        ref = self._extract_ref(bank_relative)
        if ref is None:
            return []
        files = dataset_of(self.ws.find("ingest", ref.upstream["ingest"]))
        out = []
        for path in files.splits.values():
            for row in _csv_rows(str(path)):
                if row[0] == video_id and len(row) >= 7 and abs(float(row[1]) - t) < 1e-6:
                    out.append((np.array([float(v) for v in row[2:6]]), int(row[6])))
        return out

    def predictions(self, bank_relative: str, video_id: str, t: float) -> list[tuple[np.ndarray, int, float]]:
        ref = self._extract_ref(bank_relative)
        if ref is None:
            return []
        for evaluation in self.ws.history("evaluate"):
            if evaluation.upstream.get("extract") == ref.key:
                path = Path(evaluation.path("detections.csv"))
                if path.is_file():
                    return [(np.array([float(v) for v in row[2:6]]), int(row[6]), float(row[-1]))
                            for row in _csv_rows(str(path)) if row[0] == video_id and abs(float(row[1]) - t) < 1e-6]
        return []

    # -- evaluations and history --------------------------------------------------------------

    def evaluations(self) -> list[tuple[StageRef, dict[str, Any]]]:
        out = []
        for ref in self.ws.history("evaluate"):
            path = Path(ref.path("summary.json"))
            if path.is_file():
                out.append((ref, json.loads(path.read_text())))
        return out

    def history(self) -> list[dict[str, Any]]:
        from storage.tables import read_history

        path = self.root / "history" / "results.parquet"  # storage.stages.evaluate.HISTORY
        try:
            return read_history(path) if path.is_file() else []
        except (OSError, StadError):
            return []


def _known_config(ref: StageRef) -> tuple[dict[str, Any] | None, str]:
    """The config of an output that kept no config file, where its other files tell it: a head's
    checkpoint holds its config; an extract output's settings follow from its bank specs and hash."""
    try:
        if ref.stage in ("train", "acfb") and Path(ref.path("checkpoint.pt")).is_file():
            from stad_core.train.checkpoint import load_checkpoint

            return dict(load_checkpoint(ref.path("checkpoint.pt")).config), "the head checkpoint"
        if ref.stage == "extract":
            from storage.banks import open_bank
            from storage.bundle import _extract_config

            specs = {kind: open_bank(ref.path(f"{kind}.zarr"), "r").spec for kind in ("long_term", "context")
                     if Path(ref.path(f"{kind}.zarr")).exists()}
            return _extract_config(ref, specs).model_dump(mode="json"), "the bank specs (matched to the config hash)"
    except (StadError, OSError, ValueError, KeyError):
        pass
    return None, ""


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _csv_rows(path: str) -> list[list[str]]:
    return _cached_csv_rows(path, Path(path).stat().st_mtime_ns)  # a forced re-run rewrites the file


@lru_cache(maxsize=8)
def _cached_csv_rows(path: str, mtime_ns: int) -> list[list[str]]:
    with open(path, newline="") as handle:
        return [row for row in csv.reader(handle) if row]


def png(figure: Any) -> bytes:
    """A ``matplotlib.figure.Figure`` (no pyplot: no global state, no GUI backend) as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()

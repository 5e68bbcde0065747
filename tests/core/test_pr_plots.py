"""Precision-recall plots: every class has a panel (with or without ground truth), axes are
labelled, and no tick label or title falls outside the image."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stad_core.ava.labelmap import LabelMap
from stad_core.ava.table import AvaTable
from stad_core.evaluation import plot_pr_curves
from stad_core.evaluation.frame_map import evaluate_frame_map
from stad_core.evaluation.report import pr_figure


def _result():  # noqa: ANN202
    boxes = np.array([[0.1, 0.1, 0.4, 0.9], [0.5, 0.1, 0.9, 0.9]] * 3)
    gt = AvaTable.from_arrays(["v"] * 6, [2, 2, 3, 3, 4, 4], boxes, action_id=[1, 2, 1, 2, 1, 1], person_id=[0, 1] * 3)
    det = AvaTable.from_arrays(["v"] * 6, [2, 2, 3, 3, 4, 4], boxes, action_id=[1, 1, 2, 2, 1, 3],
                               score=[0.9, 0.2, 0.8, 0.7, 0.6, 0.5])
    # Class 3 has detections but no ground truth; class 4 has neither.
    labels = LabelMap({1: "stand", 2: "a class with a rather long name", 3: "jump", 4: "wave"})
    return evaluate_frame_map(gt, det, labels)


def test_every_class_has_a_labelled_panel_inside_the_image(tmp_path: Path) -> None:
    result = _result()
    name, (ids, _) = next(iter(result.groups.items()))
    assert set(ids) == {1, 2, 3, 4}
    fig = pr_figure(result, name)
    panels = [ax for ax in fig.axes if ax.axison]
    assert len(panels) == 4
    assert all(ax.get_xlabel() == "recall" and ax.get_ylabel() == "precision" for ax in panels)
    titles = " ".join(ax.get_title() for ax in panels)
    assert "no ground truth" in titles and "3 jump" in titles and "4 wave" in titles
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    bounds = fig.bbox
    for ax in panels:
        for text in [*ax.get_xticklabels(), *ax.get_yticklabels(), ax.xaxis.label, ax.yaxis.label, ax.title]:
            box = text.get_window_extent(renderer)
            assert bounds.x0 - 0.5 <= box.x0 and box.x1 <= bounds.x1 + 0.5, text.get_text()
            assert bounds.y0 - 0.5 <= box.y0 and box.y1 <= bounds.y1 + 0.5, text.get_text()
    paths = plot_pr_curves(result, tmp_path)
    assert len(paths) == len([g for g in result.groups.values() if g[0]])
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)

"""`stad eval-ava`: exact AVA frame-mAP of a detections CSV (official ActivityNet protocol)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    """Add ``eval-ava`` to ``app``."""

    @app.command("eval-ava")
    def eval_ava(
        labelmap: Annotated[Path, typer.Option("--labelmap", "-l", help="Label map of the evaluated classes (pbtxt or id: name lines).")],
        groundtruth: Annotated[Path, typer.Option("--groundtruth", "-g", help="Ground-truth CSV (AVA format).")],
        detections: Annotated[Path, typer.Option("--detections", "-d", help="Detections CSV: video,t,x1,y1,x2,y2,action,score.")],
        exclusions: Annotated[Optional[Path], typer.Option("--exclusions", "-e", help="Excluded keyframes CSV (protocol 2019).")] = None,
        protocol: Annotated[str, typer.Option(help="2019 (integer-second keys, exclusions) or 2020 (fractional keys, boxless rows).")] = "2019",
        variant: Annotated[str, typer.Option(help="official, or mmaction2 / pyslowfast to reproduce those codebases' rules.")] = "official",
        iou: Annotated[float, typer.Option("--iou", help="IoU threshold for a match.")] = 0.5,
        top_k: Annotated[int, typer.Option("--top-k", help="Detections kept per keyframe (official 50; 0 = no cap).")] = 50,
        json_out: Annotated[Optional[Path], typer.Option("--json", help="Write metrics as JSON here (null for classes without ground truth).")] = None,
        plots: Annotated[Optional[Path], typer.Option("--plots", help="Write precision-recall PNGs and a markdown report into this folder.")] = None,
        lenient: Annotated[bool, typer.Option("--lenient", help="Warn about bad detection rows instead of refusing the file: boxes outside [0, 1] clipped, inverted boxes and scores outside [0, 1] kept, unknown action ids and blank lines dropped.")] = False,
        pixel_boxes: Annotated[Optional[tuple[int, int]], typer.Option("--pixel-boxes", metavar="WIDTH HEIGHT", help="The detection boxes are pixels of WIDTH x HEIGHT frames: x is divided by WIDTH, y by HEIGHT.")] = None,
    ) -> None:
        """Print AP per label-map class (``AP@0.5IOU<TAB>id<TAB>name<TAB>ap``) and the mAP line.

        Detections are validated like ground truth; problems stop with ``file:line`` and the fix,
        or with ``--lenient`` become warnings on stderr (one line per problem, with a count).
        """
        from stad_core.evaluation import ap_lines, evaluate_files, write_json, write_report

        result = evaluate_files(
            labelmap,
            groundtruth,
            detections,
            exclusions,
            protocol=protocol,
            variant=variant,
            iou_threshold=iou,
            top_k=top_k or None,
            lenient=lenient,
            pixel_boxes=pixel_boxes if pixel_boxes and None not in pixel_boxes else None,
            on_warning=lambda line: typer.echo(f"warning: {line}", err=True),
        )
        for line in ap_lines(result):
            typer.echo(line)
        if json_out is not None:
            write_json(result, json_out)
        if plots is not None:
            write_report(result, plots)

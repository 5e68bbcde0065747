"""`stad eval-tubes` (frame-/video-mAP of tube detections) and `stad synth-tubes` (synthetic tube GT)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    """Add ``eval-tubes`` and ``synth-tubes`` to ``app``."""

    @app.command("eval-tubes")
    def eval_tubes(
        groundtruth: Annotated[Path, typer.Option("--groundtruth", "-g", help="Ground-truth tube pickle (MultiSports / UCF101-24 / JHMDB layout).")],
        frame_detections: Annotated[Optional[Path], typer.Option("--frame-detections", "-f", help="Frame detections pickle: [N, 8] rows, or items with per-class scores.")] = None,
        video_detections: Annotated[Optional[Path], typer.Option("--video-detections", "-v", help="Tube detections pickle: {label: [(video, score, tube)]}. Without it, tubes are linked from the frame detections.")] = None,
        preset: Annotated[str, typer.Option(help="multisports (the official MultiSports evaluator) or act (ACT/MOC rules, UCF101-24/JHMDB papers).")] = "multisports",
        split: Annotated[int, typer.Option(help="Test list to evaluate (1-based; JHMDB has 3).")] = 1,
        frame_iou: Annotated[float, typer.Option("--frame-iou", help="IoU threshold of frame-mAP.")] = 0.5,
        link_iou: Annotated[float, typer.Option("--link-iou", help="Linking: least IoU with a tube's last box.")] = 0.5,
        end_after: Annotated[int, typer.Option("--end-after", help="Linking: frames without a box after which a tube ends (public code: 1).")] = 1,
        min_length: Annotated[int, typer.Option("--min-length", help="Linking: shortest tube kept, in frames.")] = 15,
        tube_nms: Annotated[Optional[float], typer.Option("--tube-nms", help="Linking: drop tubes overlapping a better one by more than this (MOC: 0.3).")] = None,
        save_tubes: Annotated[Optional[Path], typer.Option("--save-tubes", help="Write the linked tubes here (video_detections.pkl layout).")] = None,
        json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the summary (fractions, per class, v-mAP curve) as JSON.")] = None,
        report: Annotated[Optional[Path], typer.Option("--report", help="Write report.md and video_map.png (v-mAP against IoU) into this folder.")] = None,
    ) -> None:
        """Print f-mAP@IoU, v-mAP@0.2, v-mAP@0.5 and v-mAP@0.1:0.9 in percent, as the public tools do."""
        from stad_core.tubes.evaluate import evaluate_tube_files
        from stad_core.tubes.files import save_video_detections
        from stad_core.tubes.linking import LinkSettings
        from stad_core.tubes.metrics import settings_for
        from stad_core.tubes.report import headline_lines, write_json, write_report

        try:
            settings = settings_for(preset, split=split - 1)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--preset") from exc
        link = LinkSettings(iou_threshold=link_iou, end_after=end_after, min_length=min_length, tube_nms=tube_nms)
        result = evaluate_tube_files(groundtruth, frame_detections, video_detections, settings=settings, link=link,
                                     frame_iou=frame_iou)
        for line in headline_lines(result.summary):
            typer.echo(line)
        if result.linked:
            n = sum(len(t) for t in (result.video_detections or {}).values())
            typer.echo(f"(v-mAP from {n} tubes linked from the frame detections)", err=True)
        if save_tubes is not None and result.video_detections is not None:
            save_video_detections(result.video_detections, save_tubes)
        if json_out is not None:
            write_json(result.summary, json_out)
        if report is not None:
            write_report(result.summary, report)

    @app.command("synth-tubes")
    def synth_tubes_cmd(
        dataset: Annotated[Path, typer.Option("--dataset", "-d", help="A folder written by `stad synth` (its dataset.json).")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Ground-truth tube pickle to write.")],
        min_frames: Annotated[int, typer.Option("--min-frames", help="Shortest tube kept, in frames.")] = 2,
    ) -> None:
        """Export a synthetic dataset's actions as tubes (every frame, exact boxes and spans)."""
        from stad_core.tubes.gt import save_ground_truth
        from stad_core.tubes.synth import synth_config_of, synth_tubes

        gt = synth_tubes(synth_config_of(dataset), min_frames=min_frames)
        save_ground_truth(gt, out)
        typer.echo(f"{out}: {gt.num_tubes()} tubes in {len(gt.nframes)} videos "
                   f"({len(gt.test_videos[0])} test), {len(gt.labels)} classes")

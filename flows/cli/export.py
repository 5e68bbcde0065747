"""``stad export``: a workspace's trained model as one bundle folder (what ``stad infer`` runs)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export(
        out: Path = typer.Argument(..., help="Bundle folder to write (new, or a previous bundle to replace)."),
        workspace: str = typer.Option(".", "--workspace", "-w", help="Workspace holding the trained model."),
        model: str | None = typer.Option(None, "--model", "-m", help="A train/acfb output (key or folder); "
                                         "default: the newest."),
        detector: str | None = typer.Option(None, "--detector", help="Person detector for new videos (a name in "
                                            "stad_core.detection.DETECTORS); default: the workspace's detector."),
        detector_weights: str | None = typer.Option(None, "--detector-weights", help="Its weights: a state-dict "
                                                    "path or 'cache' (the torch cache)."),
        detector_threshold: float = typer.Option(0.8, "--detector-threshold", help="With --detector: keep person "
                                                 "boxes scoring >= this."),
    ) -> None:
        """Write a model bundle: detector, backbone + preprocessing, head (+ ACAR head), label map, bank settings."""
        from rich.console import Console

        from stad_core.detection import DetectConfig
        from storage.bundle import export_bundle

        override = None
        if detector is not None or detector_weights is not None:
            override = DetectConfig(detector=detector or "tiny_fasterrcnn", weights=detector_weights or "cache",
                                    score_threshold=detector_threshold)
        bundle = export_bundle(workspace, out, model=model, detector=override)
        m = bundle.manifest
        Console().print(f"bundle {bundle.root}: head {m['head']['label']} ({m['head']['stage']} "
                        f"{m['source']['model']}), backbone {m['backbone']['backbone']}, detector "
                        f"{m['detector']['config']['detector']} ({m['detector']['source']}), config hash "
                        f"{bundle.config_hash}", highlight=False, soft_wrap=True)

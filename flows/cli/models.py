"""`stad models`: every backbone with its sampling, map shapes, parameters, GFLOPs and checkpoint families."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add ``models`` to ``app``."""
    app.command("models")(models)


def models(
    names: list[str] = typer.Argument(None, help="Backbones to show (default: all).", show_default=False),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per backbone instead of a table."),
) -> None:
    """List the backbones `build_backbone` knows (finetune's `backbone:` key).

    Parameters and GFLOPs are those of the published size, counted on PyTorch's meta device (no weights, no
    compute) for one clip of the backbone's usual frame count at 256 x 256 pixels; GFLOPs count 2 per
    multiply-add. Map shapes are per pathway: channels, frames, height, width (stride 16).
    """
    import dataclasses
    import json

    from rich.console import Console
    from rich.table import Table

    from stad_core.errors import ConfigError
    from stad_core.models.catalog import CARDS, CLIP_SIZE, describe_backbone

    unknown = [n for n in names or [] if n not in CARDS]
    if unknown:
        raise ConfigError(f"unknown backbone {unknown[0]!r}; choose from {', '.join(CARDS)}")
    rows = [describe_backbone(n) for n in (names or list(CARDS))]
    if as_json:
        for row in rows:
            typer.echo(json.dumps(dataclasses.asdict(row)))
        return
    table = Table(title=f"backbones (one clip at {CLIP_SIZE} x {CLIP_SIZE} px)")
    for column in ("name", "sampling", "map(s) C x T x H x W", "channels", "params (M)", "GFLOPs", "checkpoints"):
        table.add_column(column, justify="right" if column in ("channels", "params (M)", "GFLOPs") else "left")
    for r in rows:
        table.add_row(r.name, f"{r.frames}x{r.step}", ", ".join("x".join(map(str, s)) for s in r.map_shapes),
                      str(r.channels), f"{r.params_m:.1f}", f"{r.gflops:.1f}", ", ".join(r.families))
    Console(width=160).print(table)

"""``stad view``: the read-only web viewer of a workspace (stage outputs, banks, results)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("view")
    def view(
        workspace: Path = typer.Argument(Path("."), help="The workspace to browse."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (default: this machine only)."),
        port: int = typer.Option(8765, "--port", help="Port to listen on."),
    ) -> None:
        """Browse a workspace in the browser: stage outputs and configs, banks, keyframes, neighbours, results."""
        import uvicorn
        from rich.console import Console

        from stad_core.errors import StadError
        from storage.viewer.app import create_app

        if not workspace.is_dir():
            raise StadError(f"{workspace} is not a folder: pass a workspace (e.g. the demo's demo-data)")
        Console().print(f"stad view: http://{host}:{port}/  (workspace {workspace.resolve()}; Ctrl-C stops)",
                        highlight=False, soft_wrap=True)
        uvicorn.run(create_app(workspace), host=host, port=port, log_level="warning")

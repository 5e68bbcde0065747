"""`stad view` in a real headless browser (Debian's chromium; the Makefile's test set-up installs it):
pages load, a keyframe renders with its boxes, paths outside the workspace are refused, names are
escaped, and browsing writes nothing."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from infer_testlib import build_trained_workspace  # noqa: E402
from flows_testlib import free_port  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed: `make test` installs "
                                "Debian's (apt-get install chromium)")
HOSTILE = "<img src=x onerror=alert(1)>.md"


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, dict]]:
    import uvicorn

    from storage.viewer.app import create_app

    root = tmp_path_factory.mktemp("view")
    refs = build_trained_workspace(root, heads=("lfb_max",))
    ws = root / "ws"
    (Path(refs["evaluate:lfb_max"].uri) / "report" / HOSTILE).write_text("a file name that is HTML")
    (root / "secret.txt").write_text("TOP-SECRET-CONTENT")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(ws), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}", ws, refs
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _chromium(*args: str, timeout: float = 60) -> str:
    # A fresh profile per run: a shared one keeps a SingletonLock from a killed or concurrent run.
    with tempfile.TemporaryDirectory(prefix="stad-chromium-") as profile:
        result = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                 "--force-device-scale-factor=1", f"--user-data-dir={profile}", *args],
                                capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def dom(url: str) -> str:
    return _chromium("--dump-dom", url)


def test_pages_load_and_escape(served: tuple[str, Path, dict]) -> None:
    base, ws, refs = served
    before = _snapshot(ws)
    index = dom(base + "/")
    assert "stage outputs" in index and refs["evaluate:lfb_max"].path_in_workspace in index
    assert "long_term.zarr" in index and "evaluations" in index
    evaluation = dom(base + "/output?" + urlencode({"path": refs["evaluate:lfb_max"].path_in_workspace}))
    assert "per-class AP" in evaluation and "pr_" in evaluation
    # The hostile file name is shown as text, never as markup.
    assert "&lt;img src=x onerror=alert(1)&gt;.md" in evaluation and "<img src=\"x\"" not in evaluation
    # Each output shows its config (the config.json written beside its record at commit).
    head = dom(base + "/output?" + urlencode({"path": refs["train:lfb_max"].path_in_workspace}))
    assert "config.json" in head and '"fbo": "max"' in head
    extract = dom(base + "/output?" + urlencode({"path": refs["extract"].path_in_workspace}))
    assert '"num_frames": 8' in extract and "long_term.zarr" in extract
    bank_path = f"{refs['extract'].path_in_workspace}/long_term.zarr"
    bank = dom(base + "/bank?" + urlencode({"path": bank_path}))
    assert "synth_0002" in bank and "complete" in bank and "ratio" in bank
    timeline = dom(base + "/timeline?" + urlencode({"bank": bank_path, "video": "synth_0002"}))
    assert "keyframes" in timeline and "/keyframe?" in timeline
    results = dom(base + "/results")
    assert "lfb_max" in results and "history.png" in results
    for image in ("/img/history.png", "/img/timeline.png?" + urlencode({"bank": bank_path, "video": "synth_0002"})):
        response = httpx.get(base + image, timeout=60)
        assert response.status_code == 200 and response.content[:4] == b"\x89PNG", image
    assert _snapshot(ws) == before, "the viewer wrote into the workspace"


def test_keyframe_renders_with_boxes(served: tuple[str, Path, dict], tmp_path: Path) -> None:
    from PIL import Image

    from stad_core.infer import PALETTE

    base, ws, refs = served
    bank_path = f"{refs['extract_gt'].path_in_workspace}/long_term.zarr"  # ground-truth boxes, person ids 0..
    url = base + "/keyframe?" + urlencode({"bank": bank_path, "video": "synth_0002", "t": "6"})
    page = dom(url)
    assert "ground truth" in page and "predicted" in page and "nearest neighbours in other videos" in page
    assert re.search(r"synth_000[01] \d+s", page), "neighbours come from the other videos"
    shot = tmp_path / "keyframe.png"
    _chromium(f"--screenshot={shot}", "--window-size=900,900", url)
    image = np.asarray(Image.open(shot).convert("RGB"))
    # The boxes are drawn in their track colours: those exact colours cover box outlines on screen.
    coloured = sum(int(np.all(image == np.array(c, np.uint8), axis=-1).sum()) for c in PALETTE[:4])
    assert coloured > 200, f"only {coloured} box-coloured pixels in the screenshot"
    # On the bank the evaluation scored, each box shows the head's top actions next to the ground truth.
    scored = dom(base + "/keyframe?" + urlencode({"bank": f"{refs['extract'].path_in_workspace}/long_term.zarr",
                                                  "video": "synth_0002", "t": "6"}))
    assert re.search(r"<td>[a-z_]+ 0\.\d\d(, [a-z_]+ 0\.\d\d)*</td>", scored), "no predicted actions shown"
    plain = httpx.get(base + "/img/keyframe.png?" + urlencode({"bank": bank_path, "video": "synth_0002", "t": "6"}),
                      timeout=60)
    assert plain.status_code == 200 and Image.open(io.BytesIO(plain.content)).size[0] >= 160


def test_paths_outside_the_workspace_are_refused(served: tuple[str, Path, dict]) -> None:
    base, ws, _ = served
    for path in ("../secret.txt", str(ws.parent / "secret.txt"), "synth/../../secret.txt", "/etc/passwd"):
        response = httpx.get(base + "/file?" + urlencode({"path": path}), timeout=30)
        assert response.status_code == 403 and "refused" in response.text, path
        assert "TOP-SECRET-CONTENT" not in response.text and "root:" not in response.text, path
    page = dom(base + "/file?" + urlencode({"path": "../secret.txt"}))
    assert "refused" in page and "is outside the workspace" in page and "TOP-SECRET-CONTENT" not in page
    assert httpx.get(base + "/bank?" + urlencode({"path": "../"}), timeout=30).status_code == 403
    # Only reads: the app has no route that accepts a write.
    assert httpx.post(base + "/file?" + urlencode({"path": "history"}), timeout=30).status_code == 405

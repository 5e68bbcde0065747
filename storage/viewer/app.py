"""The read-only workspace viewer: a small ASGI app (FastAPI) that ``stad view`` serves on localhost.

Pages: ``/`` (stage outputs, banks, evaluations), ``/output?path=`` (a stage output: record, config,
files; an evaluation's per-class AP and PR curves), ``/bank?path=`` (spec, rows, sizes, ratio,
completeness per video), ``/timeline?bank=&video=`` (rows per second and per track),
``/keyframe?bank=&video=&t=`` (the frame with its boxes, ground-truth vs predicted actions, nearest
neighbours in other videos with thumbnails), ``/results`` (the history as a plot over time).
Images: ``/img/keyframe.png``, ``/img/thumb.png``, ``/img/timeline.png``, ``/img/history.png``,
``/file?path=`` (PNG/JSON/markdown/CSV files of the workspace).

Only GET routes exist; every path parameter is workspace-relative and refused (403) when it leaves
the workspace; every value put into a page goes through ``html.escape``.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from stad_core.errors import StadError
from storage.viewer.data import OutsideWorkspace, View, png

STYLE = """body{font-family:sans-serif;margin:1.5em;max-width:1200px}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:14px}th{background:#eee}
code{background:#f4f4f4}nav a{margin-right:1em}img{border:1px solid #ddd;margin:2px}.ok{color:green}.bad{color:#b00}"""
FILE_TYPES = {".png": "image/png", ".json": "application/json", ".md": "text/plain; charset=utf-8",
              ".csv": "text/plain; charset=utf-8", ".txt": "text/plain; charset=utf-8",
              ".pbtxt": "text/plain; charset=utf-8"}


def e(value: Any) -> str:
    """Escape anything for HTML text and attribute values."""
    return html.escape(str(value), quote=True)


def link(href: str, text: Any, /, **params: Any) -> str:
    return f'<a href="{e(href + ("?" + urlencode(params) if params else ""))}">{e(text)}</a>'


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], raw: bool = False) -> str:
    """An HTML table; cells are escaped unless ``raw`` (cells already built from escaped parts)."""
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c if raw else e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def page(title: str, body: str) -> HTMLResponse:
    nav = (f'<nav>{link("/", "workspace")}{link("/results", "results history")}</nav>')
    return HTMLResponse(f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)} - stad view</title>"
                        f"<style>{STYLE}</style></head><body>{nav}<h1>{e(title)}</h1>{body}</body></html>")


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def create_app(workspace: str | Path) -> FastAPI:
    """The viewer of ``workspace`` (read only)."""
    view = View.open(workspace)
    app = FastAPI(title="stad view", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(OutsideWorkspace)
    async def _outside(request: Request, exc: OutsideWorkspace) -> Response:
        return HTMLResponse(f"<h1>refused</h1><p>{e(exc)}</p>", status_code=403)

    @app.exception_handler(StadError)
    async def _stad(request: Request, exc: StadError) -> Response:
        return HTMLResponse(f"<h1>error</h1><p>{e(exc)}</p>", status_code=404)

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        outputs = view.outputs()
        rows = [(e(r.stage), link("/output", r.path_in_workspace, path=r.path_in_workspace), e(r.key),
                 e(", ".join(f"{k}={v}" for k, v in sorted(r.counts.items()))),
                 e(time.strftime("%Y-%m-%d %H:%M", time.localtime(Path(r.path("_stage.json")).stat().st_mtime))))
                for r in outputs]
        banks = [(link("/bank", b, path=b),) for b in view.banks()]
        evals = [(link("/output", r.path_in_workspace, path=r.path_in_workspace), e(s.get("head")), e(s.get("split")),
                  e(_pct(s.get("mAP")))) for r, s in view.evaluations()]
        body = (f"<p>workspace <code>{e(view.root)}</code></p><h2>stage outputs</h2>"
                + table(["stage", "output", "key", "counts", "finished"], rows, raw=True)
                + "<h2>feature banks</h2>" + table(["bank"], banks, raw=True)
                + "<h2>evaluations</h2>" + table(["evaluation", "head", "split", "mAP (%)"], evals, raw=True))
        return page("stad workspace", body)

    @app.get("/output", response_class=HTMLResponse)
    def output(path: str = Query(...)) -> HTMLResponse:
        ref, config, source, files = view.output(path)
        record = json.loads(Path(ref.path("_stage.json")).read_text())
        parts = ["<h2>record</h2>", f"<pre>{e(json.dumps(record, indent=1))}</pre>",
                 f"<h2>config</h2><p>from {e(source)}</p><pre>{e(json.dumps(config, indent=1))}</pre>"
                 if config is not None else "<h2>config</h2><p>(this output kept no config file)</p>"]
        summary_path = Path(ref.path("summary.json"))
        if summary_path.is_file():
            summary = json.loads(summary_path.read_text())
            parts.append(f"<h2>per-class AP: {e(summary.get('head'))}, mAP {e(_pct(summary.get('mAP')))} %</h2>")
            parts.append(table(["id", "class", "group", "AP (%)", "ground truth", "detections"],
                               [(c["id"], c["name"], c["group"], _pct(c["ap"]), c["gt"], c["detections"])
                                for c in summary.get("classes", [])]))
            parts.append("<h2>precision-recall curves</h2>" + "".join(
                f'<img src="{e("/file?" + urlencode({"path": p}))}" alt="{e(p)}" style="max-width:100%">'
                for p in summary.get("plots", [])))
        parts.append("<h2>files</h2>" + table(["file"], [(link("/file", f, path=f) if Path(f).suffix in FILE_TYPES
                                                          else e(f),) for f in files], raw=True))
        banks = [b for b in view.banks() if b.startswith(ref.path_in_workspace + "/")]
        if banks:
            parts.append("<h2>banks</h2>" + table(["bank"], [(link("/bank", b, path=b),) for b in banks], raw=True))
        return page(f"{ref.stage} output", "".join(parts))

    @app.get("/bank", response_class=HTMLResponse)
    def bank(path: str = Query(...)) -> HTMLResponse:
        s = view.bank_summary(path)
        spec = s["spec"]
        head = table(["kind", "rows", "feature dim", "dtype", "raw", "stored", "ratio", "codec"],
                     [(spec["kind"], s["rows"], spec["feature_dim"], spec["dtype"], _size(s["raw"]),
                       _size(s["stored"]), f"{s['ratio']:.2f}x", s["codec"])])
        videos = [(link("/timeline", v.video_id, bank=path, video=v.video_id), e(v.rows), e(v.num_seconds),
                   e(v.max_per_second), e(_size(v.stored_bytes)), '<span class="ok">complete</span>')
                  for v in s["videos"]]
        videos += [(e(v), "", "", "", "", '<span class="bad">incomplete</span>') for v in s["incomplete"]]
        body = (f"<p><code>{e(path)}</code></p>{head}<h2>spec</h2>"
                + table(["field", "value"], sorted(spec.items()))
                + "<h2>videos</h2>" + table(["video", "rows", "seconds", "most per second", "stored", "state"],
                                           videos, raw=True))
        return page(f"bank: {spec['kind']}", body)

    @app.get("/timeline", response_class=HTMLResponse)
    def timeline(bank: str = Query(...), video: str = Query(...)) -> HTMLResponse:
        rows = view.video_rows(bank, video)
        seconds = np.unique(rows.timestamps)
        links = " ".join(link("/keyframe", f"{t:g}", bank=bank, video=video, t=f"{t:g}") for t in seconds)
        img = "/img/timeline.png?" + urlencode({"bank": bank, "video": video})
        body = (f'<p>bank <code>{e(bank)}</code>: {e(len(rows))} rows over {e(len(seconds))} seconds</p>'
                f'<img src="{e(img)}" alt="timeline"><h2>keyframes</h2><p>{links}</p>')
        return page(f"timeline: {video}", body)

    @app.get("/keyframe", response_class=HTMLResponse)
    def keyframe(bank: str = Query(...), video: str = Query(...), t: float = Query(...)) -> HTMLResponse:
        info = view.keyframe(bank, video, t)
        img = "/img/keyframe.png?" + urlencode({"bank": bank, "video": video, "t": f"{t:g}"})
        people = [(e(p["row"]), e(p["person"]), e(p["box"]), e(", ".join(p["gt"]) or "-"),
                   e(", ".join(f"{n} {s:.2f}" for n, s in p["predicted"]) or "-"),
                   link("/keyframe", "neighbours", bank=bank, video=video, t=f"{t:g}", row=p["row"]))
                  for p in info["people"]]
        body = (f'<img id="keyframe" src="{e(img)}" alt="keyframe with boxes">'
                + table(["row", "person/track", "box", "ground truth", "predicted (top 3)", ""], people, raw=True))
        body += _neighbours(view, bank, video, info["people"])
        return page(f"{video} at {t:g} s", body)

    def _neighbours(view: View, bank: str, video: str, people: list[dict[str, Any]]) -> str:
        from storage.browse import nearest_neighbours

        if not people:
            return ""
        b = view.bank(bank)
        others = [v for v in b.videos() if v != video]
        out = ["<h2>nearest neighbours in other videos</h2>"]
        for p in people[:4]:
            found = nearest_neighbours(b, video, p["row"], k=4, videos=others)
            cells = "".join(
                f'<td>{link("/keyframe", f"{n.video_id} {n.timestamp:g}s", bank=bank, video=n.video_id, t=f"{n.timestamp:g}")}'
                f'<br><img src="{e("/img/thumb.png?" + urlencode({"bank": bank, "video": n.video_id, "row": n.row}))}"'
                f' alt="thumbnail" height="96"><br>cos {e(f"{n.similarity:.3f}")}</td>' for n in found)
            query = (f'<td>row {e(p["row"])}<br><img src="'
                     f'{e("/img/thumb.png?" + urlencode({"bank": bank, "video": video, "row": p["row"]}))}" '
                     f'alt="query" height="96"></td>')
            out.append(f"<table><tr>{query}{cells}</tr></table>")
        return "".join(out)

    @app.get("/results", response_class=HTMLResponse)
    def results() -> HTMLResponse:
        history = view.history()
        rows = [(str(r.get("evaluated_at") or ""),
                 r.get("head"), r.get("split"), _pct(r.get("mAP")), r.get("epoch"), r.get("code_version"))
                for r in history]
        body = ('<img src="/img/history.png" alt="results history">'
                + table(["when", "head", "split", "mAP (%)", "epoch", "code"], rows))
        return page("results history", body)

    @app.get("/file")
    def file(path: str = Query(...)) -> Response:
        target = view.inside(path)
        kind = FILE_TYPES.get(target.suffix.lower())
        if kind is None or not target.is_file():
            raise OutsideWorkspace(f"{path!r} is not a file the viewer shows ({', '.join(FILE_TYPES)})")
        return Response(target.read_bytes(), media_type=kind, headers={"X-Content-Type-Options": "nosniff"})

    @app.get("/img/keyframe.png")
    def keyframe_png(bank: str = Query(...), video: str = Query(...), t: float = Query(...)) -> Response:
        from stad_core.infer import Overlay, draw
        from stad_core.video import decode_frames_at

        found = view.video_file(bank, video)
        if found is None:
            raise StadError(f"no video file known for {video!r}")
        path, offset = found
        frame = decode_frames_at(path, [t - offset])[0].numpy()
        info = view.keyframe(bank, video, t)
        h, w = frame.shape[:2]
        boxes = np.array([p["box"] for p in info["people"]], np.float64).reshape(-1, 4) * [w, h, w, h]
        ids = np.array([p["person"] for p in info["people"]], np.int64)
        captions = [f"{p['row']}" for p in info["people"]]
        scale = max(1, 480 // max(h, 1))
        image = np.kron(frame, np.ones((scale, scale, 1), np.uint8)) if scale > 1 else frame
        image = draw(image, Overlay(boxes * scale, ids, captions))
        return Response(_encode_png(image), media_type="image/png")

    @app.get("/img/thumb.png")
    def thumb_png(bank: str = Query(...), video: str = Query(...), row: int = Query(...)) -> Response:
        from stad_core.video import decode_frames_at

        rows = view.video_rows(bank, video)
        if not 0 <= row < len(rows):
            raise StadError(f"{video!r} has rows 0..{len(rows) - 1}")
        found = view.video_file(bank, video)
        if found is None:
            raise StadError(f"no video file known for {video!r}")
        frame = decode_frames_at(found[0], [float(rows.timestamps[row]) - found[1]])[0].numpy()
        h, w = frame.shape[:2]
        x1, y1, x2, y2 = (rows.boxes[row] * [w, h, w, h]).round().astype(int)
        crop = frame[max(y1, 0):max(y2, y1 + 1), max(x1, 0):max(x2, x1 + 1)]
        return Response(_encode_png(crop if crop.size else frame), media_type="image/png")

    @app.get("/img/timeline.png")
    def timeline_png(bank: str = Query(...), video: str = Query(...)) -> Response:
        from matplotlib.figure import Figure

        rows = view.video_rows(bank, video)
        fig = Figure(figsize=(8, 3.2))
        ax = fig.subplots()
        seconds, counts = np.unique(rows.timestamps, return_counts=True)
        ax.bar(seconds, counts, width=0.8, color="#bbb", label="rows")
        for pid in np.unique(rows.person_ids):
            t = rows.timestamps[rows.person_ids == pid]
            lane = int(np.nonzero(np.unique(rows.person_ids) == pid)[0][0])
            ax.plot(t, np.full(len(t), -0.5 - 0.5 * lane), "|", markersize=6, label=f"person {pid}" if pid >= 0 else "unknown person")
        ax.set_xlabel("keyframe (s)")
        ax.set_ylabel("rows per second / tracks")
        ax.set_title(f"{video}: rows per second and per person")
        ax.legend(fontsize=7, loc="upper right", ncol=2)
        return Response(png(fig), media_type="image/png")

    @app.get("/img/history.png")
    def history_png() -> Response:
        from matplotlib.figure import Figure

        history = view.history()
        fig = Figure(figsize=(8, 3.5))
        ax = fig.subplots()
        heads = sorted({str(r.get("head")) for r in history})
        for head in heads:
            pts = [(i, 100 * r["mAP"]) for i, r in enumerate(history) if str(r.get("head")) == head and r.get("mAP") is not None]
            if pts:
                ax.plot(*zip(*pts), "o-", label=head)
        ax.set_xlabel("evaluation (oldest first)")
        ax.set_ylabel("frame-mAP@0.5 (%)")
        ax.set_title("results history")
        if heads:
            ax.legend(fontsize=8)
        return Response(png(fig), media_type="image/png")

    @app.get("/api/outputs")
    def api_outputs() -> JSONResponse:
        return JSONResponse([{"stage": r.stage, "path": r.path_in_workspace, "key": r.key, "counts": r.counts}
                             for r in view.outputs()])

    return app


def _pct(value: Any) -> str:
    return "n/a" if value is None or (isinstance(value, float) and value != value) else f"{100 * float(value):.2f}"


def _encode_png(image: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    return buffer.getvalue()



"""tubes_extract: the extract stage on a tube dataset's frame keyframes (fractional times).

``extract``'s config, banks, specs, per-video work and resume; only the upstream lookup differs (the
workspace's latest ``tubes_ingest`` / ``tubes_detect`` rather than the AVA ones).
"""

from __future__ import annotations

from stad_core.errors import StadError
from stad_core.extract import ExtractConfig
from storage.stages import extract as _extract
from storage.stages.base import Stage, StagePlan
from storage.workspace import StageRef, Workspace

NAME = "tubes_extract"


def resolve(ws: Workspace, given: dict[str, StageRef]) -> dict[str, StageRef]:
    return {"ingest": given.get("ingest") or ws.require_latest("tubes_ingest", NAME),
            "detect": given.get("detect") or ws.require_latest("tubes_detect", NAME),
            "finetune": given.get("finetune") or ws.require_latest("finetune", NAME)}


def prepare(ws: Workspace, config: ExtractConfig, upstream: dict[str, StageRef]) -> StagePlan:
    if upstream["detect"].stage != "tubes_detect":
        raise StadError(f"tubes_extract reads a tubes_detect output, got a {upstream['detect'].stage} one")
    return _extract.prepare(ws, config, upstream, name=NAME)


STAGE = Stage(NAME, ExtractConfig, "extract on a tube dataset's frame keyframes -> long-term and context banks (zarr)",
              upstream=("ingest", "detect", "finetune"), gpu=True, prepare=prepare, resolve=resolve, start=_extract.start,
              video=_extract.extract_video, video_complete=_extract.bank_complete, finish=_extract.finish,
              default_config="configs/extract.yaml")

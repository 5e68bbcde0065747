"""finetune -> extract -> train with the new backbones (tiny X3D-S and VideoMAE ViT-B) on the tiny
synthetic preset, stage by stage in plain Python: the banks they write train every head."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from stad_core.heads.variants import variant_fields
from stad_core.stage_configs import DetectStageConfig, FinetuneStageConfig, demo_config
from storage import open_reader
from storage.stages.runner import run_stage

HEADS = ("linear", "acrn", "lfb_avg", "lfb_max", "lfb_nl", "acar")


@pytest.fixture(scope="module")
def detected(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STAD_GPUS", "0")
        ws = str(tmp_path_factory.mktemp("backbones") / "ws")
        base = demo_config("tiny", videos=2, seconds=12)
        synth = run_stage("synth", base.synth, ws)
        ingest = run_stage("ingest", base.ingest, ws, upstream={"synth": synth})
        detect = run_stage("detect", DetectStageConfig(), ws, upstream={"ingest": ingest})
        yield ws, base, ingest, detect


@pytest.mark.parametrize(("backbone", "size", "channels"), [
    ("x3d_s", {"width": 8, "blocks": [1, 1, 1, 1]}, 144),
    ("vit_b_videomae", {"width": 32}, 32),
])
def test_new_backbone_banks_train_every_head(detected, backbone: str, size: dict, channels: int) -> None:  # noqa: ANN001
    ws, base, ingest, detect = detected
    # As `stad run finetune backbone=... width=...` builds it: only the keys a user sets size the model.
    values = {**base.finetune.model_dump(exclude_unset=True), "backbone": backbone, "max_clips": 8, **size}
    values.pop("family", None)
    values["train"] = {**values["train"], "batch_size": 4}
    config = FinetuneStageConfig.model_validate(values)
    assert config.knobs() == {k: tuple(v) if isinstance(v, list) else v for k, v in size.items()}
    finetune = run_stage("finetune", config, ws, upstream={"ingest": ingest})
    extract = run_stage("extract", base.extract, ws, upstream={"ingest": ingest, "detect": detect, "finetune": finetune})
    assert extract.counts["rows"] > 0
    bank = open_reader(str(Path(extract.uri) / "long_term.zarr"))
    assert bank.spec.feature_dim == base.extract.feature_dim(channels) and bank.spec.backbone.startswith(backbone)
    for head in HEADS:
        cfg = base.train.model_copy(update={"epochs": 1, "batch_size": 8, **variant_fields(head)})
        trained = run_stage("train", cfg, ws, upstream={"ingest": ingest, "extract": extract})
        assert trained.counts["epochs"] == 1, head


def test_published_size_when_width_is_left_out() -> None:
    config = FinetuneStageConfig(backbone="x3d_m", weights="/ckpt/x3d_m.pyth")
    assert config.knobs() == {"weights_path": "/ckpt/x3d_m.pyth"}
    assert math.isclose(FinetuneStageConfig(backbone="vit_l_videomae", width=64).knobs()["width"], 64)

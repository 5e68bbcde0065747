"""docker-compose.yml, .env.example, docker/Dockerfile and prefect.yaml are valid and agree with
the package (there is no Docker engine here: the files are checked, the topology is exercised with
local processes in tests/e2e and test_gpu_scheduling.py)."""

from __future__ import annotations

import importlib
import importlib.util
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from flows.registry import FLOWS as STAGES

ROOT = Path(__file__).resolve().parents[2]
VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?][^}]*)?\}")
STAD_SERVICES = {"prefect-server", "prefect-worker", "deploy", "dask-scheduler", "dask-worker", "dask-worker-gpu0", "dask-worker-gpu1"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    return {str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else dict(e.split("=", 1) for e in env)


def test_services_and_images(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", *STAD_SERVICES} <= set(services)
    assert services["postgres"]["image"].startswith("postgres:")
    for name in STAD_SERVICES:
        svc = services[name]
        assert svc["image"] == "${STAD_IMAGE}" and svc["build"]["dockerfile"] == "docker/Dockerfile", name
    assert (ROOT / services["prefect-server"]["build"]["context"] / "docker" / "Dockerfile").is_file()


def test_every_variable_is_defined_in_env_example(env_example: dict[str, str]) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(VAR.findall(text))
    assert used, "no ${VAR} found: the pattern is wrong"
    missing = used - set(env_example)
    assert not missing, f"used in docker-compose.yml but not in .env.example: {sorted(missing)}"
    unused = set(env_example) - used
    assert not unused, f".env.example defines variables nothing uses: {sorted(unused)}"


def test_healthchecks_and_startup_order(compose: dict[str, Any]) -> None:
    s = compose["services"]
    assert "pg_isready" in " ".join(s["postgres"]["healthcheck"]["test"])
    assert "/api/health" in " ".join(s["prefect-server"]["healthcheck"]["test"])
    assert "health" in " ".join(s["dask-scheduler"]["healthcheck"]["test"])
    assert s["prefect-server"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("prefect-worker", "deploy"):
        assert s[name]["depends_on"]["prefect-server"]["condition"] == "service_healthy"
    for name in ("prefect-worker", "dask-worker", "dask-worker-gpu0", "dask-worker-gpu1"):
        assert s[name]["depends_on"]["dask-scheduler"]["condition"] == "service_healthy"


def test_env_wiring(compose: dict[str, Any]) -> None:
    s = compose["services"]
    db_url = _env(s["prefect-server"])["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert db_url.startswith("postgresql+asyncpg://") and "@postgres:5432/" in db_url
    for var in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"):
        assert "${%s}" % var in db_url and _env(s["postgres"])[var] == "${%s}" % var
    for name in ("prefect-worker", "dask-worker", "dask-worker-gpu0", "dask-worker-gpu1"):
        env = _env(s[name])
        # Dask workers report task states to the server themselves: they need the API URL too.
        assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api", name
        assert env["STAD_WORKSPACE"] == "/workspace", name
    assert _env(s["prefect-worker"])["STAD_DASK_ADDRESS"] == "tcp://dask-scheduler:8786"
    assert any(p.endswith(":4200") for p in s["prefect-server"]["ports"])


def test_shared_workspace_volume(compose: dict[str, Any]) -> None:
    s = compose["services"]
    assert "workspace" in compose["volumes"] and "pgdata" in compose["volumes"]
    for name in ("prefect-worker", "dask-worker", "dask-worker-gpu0", "dask-worker-gpu1"):
        assert "workspace:/workspace" in s[name]["volumes"], f"{name} must see the workspace at the same path"


def test_gpu_workers_own_one_device_each(compose: dict[str, Any]) -> None:
    s = compose["services"]
    devices = []
    for name in ("dask-worker-gpu0", "dask-worker-gpu1"):
        cmd = s[name]["command"]
        assert cmd[cmd.index("--resources") + 1] == "GPU=1" and cmd[cmd.index("--nthreads") + 1] == "1"
        (reservation,) = s[name]["deploy"]["resources"]["reservations"]["devices"]
        assert reservation["capabilities"] == ["gpu"] and len(reservation["device_ids"]) == 1
        devices.append(reservation["device_ids"][0])
        assert _env(s[name])["CUDA_VISIBLE_DEVICES"] == "0"  # the one reserved device, seen as index 0
        assert s[name]["profiles"] == ["gpu"]  # a CPU-only host still starts the rest
    assert len(set(devices)) == 2
    assert "--resources" not in s["dask-worker"]["command"]


def _check_command(cmd: list[str]) -> None:
    """The program exists in this environment and the sub-command is one it has."""
    program, args = cmd[0], [a for a in cmd[1:] if not a.startswith("-")]
    if program == "stad":
        from flows.cli import app

        assert args[0] in typer.main.get_command(app).commands, f"stad has no command {args[0]!r}"
    elif program == "prefect":
        assert shutil.which("prefect", path=str(Path(sys.executable).parent)), "prefect console script missing"
        group, *rest = args
        if group == "deploy":
            assert importlib.util.find_spec("prefect.cli.deploy") is not None
        else:
            module = importlib.import_module(f"prefect.cli.{group.replace('-', '_')}")
            assert re.search(rf"def {rest[0].replace('-', '_')}\(", Path(module.__file__).read_text()), cmd
    elif program == "dask":
        assert shutil.which("dask", path=str(Path(sys.executable).parent)), "dask console script missing"
        assert importlib.util.find_spec(f"distributed.cli.dask_{args[0]}") is not None, cmd
    else:
        pytest.fail(f"unexpected program {program!r} in {cmd}")


def test_service_commands_exist(compose: dict[str, Any]) -> None:
    for name in STAD_SERVICES:
        cmd = compose["services"][name]["command"]
        assert isinstance(cmd, list), f"{name}: use the exec (list) form"
        _check_command(cmd)


def test_dockerfile_copies_existing_paths() -> None:
    text = (ROOT / "docker" / "Dockerfile").read_text()
    sources = [part for line in text.splitlines() if line.startswith("COPY") for part in line.split()[1:-1]]
    assert sources
    for src in sources:
        assert (ROOT / src).exists(), f"Dockerfile copies {src}, which is not in the repository"


def _check_config_file(flow_name: str, path: Path, deployment: str) -> None:
    """A deployment's config file loads as its flow's config, and every absolute path in it lies in
    a volume the compose services mount (/data, /workspace): a path outside would not exist there."""
    from flows.registry import load_stage_config

    assert path.is_file(), f"{deployment}: {path} is missing"
    config = load_stage_config(flow_name, path)

    def paths(value: object) -> list[str]:
        if isinstance(value, dict):
            return [p for v in value.values() for p in paths(v)]
        if isinstance(value, list):
            return [p for v in value for p in paths(v)]
        return [value] if isinstance(value, str) and value.startswith("/") else []

    for found in paths(config.model_dump(mode="json")):
        assert found.startswith(("/data/", "/workspace")), f"{deployment}: {found} is not in a compose volume"


def test_prefect_yaml_matches_the_stage_registry() -> None:
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in spec["deployments"]}
    assert set(STAGES) <= set(deployments), "every stage (and the pipeline) has a deployment"
    for name, dep in deployments.items():
        path, _, attr = dep["entrypoint"].partition(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, attr)
        assert type(flow).__name__ == "Flow", name
        assert dep["work_pool"]["name"] == "stad"
        assert dep["parameters"]["workspace"] == "/workspace"
        assert "config" not in dep["parameters"], f"{name}: defaults go in a config file (a run's config merges over it)"
        _check_config_file(flow.name, ROOT / dep["parameters"]["config_file"], name)
    # The worker polls the pool the deployments target.
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    worker = compose["services"]["prefect-worker"]["command"]
    assert worker[worker.index("--pool") + 1] == "stad"
    assert any(d.get("schedules") for d in deployments.values()), "at least one scheduled deployment"
    data_mounts = [v for v in compose["x-stad"]["volumes"] if v.endswith(":/data:ro")]
    assert data_mounts, "the stad services mount STAD_DATA_DIR at /data"
    assert deployments["ingest"]["parameters"]["config_file"] == "configs/ingest_data_volume.yaml"

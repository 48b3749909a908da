"""docker-compose.yml checked by the real Compose validator (`docker compose config` or
Debian's `docker-compose`; no Docker engine needed), then its resolved form asserted."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from emotion_batch.config import REPO_ROOT
from tests.conftest import need

SECRETS = {
    "REDIS_PASSWORD": "r3dis-secret",
    "POSTGRES_PASSWORD": "pg-secret",
    "FLOWER_USER": "admin",
    "FLOWER_PASSWORD": "flower-secret",
    "PHOTOS_DIR": "/srv/photos",
    "WEB_TOKEN": "web-secret",
}


def _compose_command() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def _config(tmp_path: Path, values: dict[str, str], *files: str) -> subprocess.CompletedProcess:
    compose = _compose_command()
    need(compose is not None, "a Compose validator (apt-get install docker-compose)")
    env_file = tmp_path / "compose.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    args = [*compose, "--env-file", str(env_file), "--project-directory", str(REPO_ROOT)]
    for name in files or ("docker-compose.yml",):
        args += ["-f", str(REPO_ROOT / name)]
    clean_env = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    return subprocess.run([*args, "config"], capture_output=True, text=True, env=clean_env, cwd=tmp_path)


def _port_targets(ports: list) -> list[int]:
    """Container ports, from the short ("IP:HOST:CONTAINER/tcp") or long (dict) form."""
    return [int(p["target"]) if isinstance(p, dict) else int(str(p).split(":")[-1].split("/")[0]) for p in ports]


def _volume_targets(volumes: list) -> list[str]:
    return [v["target"] if isinstance(v, dict) else str(v).split(":")[1] for v in volumes]


@pytest.fixture
def services(tmp_path: Path) -> dict:
    result = _config(tmp_path, SECRETS)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["services"]


def test_compose_is_valid_and_secure(services: dict) -> None:
    assert {"redis", "postgres", "worker", "flower", "producer", "web"} <= set(services)
    redis = services["redis"]
    assert "ports" not in redis and "ports" not in services["postgres"]
    command = " ".join(map(str, redis["command"]))
    assert "--appendonly yes" in command and "--requirepass r3dis-secret" in command
    assert all("healthcheck" in services[s] for s in ("redis", "postgres", "worker", "flower", "web"))
    assert _volume_targets(redis["volumes"]) == ["/data"]
    assert services["postgres"]["volumes"]


def test_workers_get_a_gpu_and_are_checked_with_celery_ping(services: dict) -> None:
    worker = services["worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in d["capabilities"] for d in devices)
    assert "replicas" in worker["deploy"]
    assert "inspect ping" in " ".join(map(str, worker["healthcheck"]["test"]))
    assert "--concurrency" in worker["command"]
    assert worker["environment"]["REDIS_URL"] == "redis://:r3dis-secret@redis:6379/0"
    assert worker["environment"]["DATABASE_URL"].startswith("postgresql://emotion:pg-secret@postgres")


def _photo_mount(service: dict) -> dict:
    mounts = [v for v in service["volumes"] if isinstance(v, dict) and v.get("target") == "/photos"]
    assert len(mounts) == 1, service["volumes"]
    return mounts[0]


def test_photos_are_read_only_at_the_same_path_in_producer_and_workers(services: dict) -> None:
    worker, producer = _photo_mount(services["worker"]), _photo_mount(services["producer"])
    assert worker == producer and worker["read_only"] is True and worker["source"] == "/srv/photos"
    for name in ("worker", "producer", "web"):
        assert services[name]["environment"]["ALLOWED_ROOTS"] == '["/photos", "/uploads"]'
    assert services["producer"]["profiles"] == ["tools"]


def test_flower_has_basic_auth_and_a_published_port(services: dict) -> None:
    flower = services["flower"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"] == "admin:flower-secret"
    assert _port_targets(flower["ports"]) == [5555]
    assert "flower" in flower["command"]


def test_missing_secret_is_refused(tmp_path: Path) -> None:
    values = {k: v for k, v in SECRETS.items() if k != "REDIS_PASSWORD"}
    result = _config(tmp_path, values)
    assert result.returncode != 0 and "REDIS_PASSWORD" in result.stderr


def test_hub_override_publishes_on_the_private_address_only(tmp_path: Path) -> None:
    result = _config(tmp_path, {**SECRETS, "HUB_ADDR": "10.0.0.5"}, "docker-compose.yml", "docker-compose.hub.yml")
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    for name in ("redis", "postgres"):
        published = [str(p.get("host_ip") if isinstance(p, dict) else p) for p in services[name]["ports"]]
        assert published and all("10.0.0.5" in p for p in published), published


def test_dockerfile_has_the_targets_compose_builds() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    targets = set(re.findall(r"^FROM \S+ AS (\w+)", text, flags=re.MULTILINE))
    assert {"cpu", "gpu"} <= targets
    assert "tensorflow[and-cuda]" in text


def test_web_serves_with_its_token_on_the_configured_bind(tmp_path: Path, services: dict) -> None:
    web = services["web"]
    assert web["command"][:2] == ["producer", "serve"] and "0.0.0.0" in web["command"]
    assert web["environment"]["WEB_TOKEN"] == "web-secret" and web["environment"]["UPLOAD_ROOT"] == "/uploads"
    assert "/healthz" in " ".join(map(str, web["healthcheck"]["test"]))
    assert web["environment"]["DATABASE_URL"] == services["worker"]["environment"]["DATABASE_URL"]
    assert web["environment"]["REDIS_URL"] == services["worker"]["environment"]["REDIS_URL"]
    assert set(web["depends_on"]) == {"redis", "postgres"}
    published = web["ports"][0]
    assert _port_targets(web["ports"]) == [8000]
    assert (published["host_ip"] if isinstance(published, dict) else str(published)).startswith("127.0.0.1")
    uploads = [v for v in services["worker"]["volumes"] if isinstance(v, dict) and v.get("target") == "/uploads"]
    assert uploads and uploads[0]["read_only"] is True  # workers read what the web service stored
    assert "/uploads" in _volume_targets(web["volumes"])

    elsewhere = _config(tmp_path, {**SECRETS, "WEB_BIND": "10.0.0.7", "WEB_PORT": "8443"})
    assert elsewhere.returncode == 0, elsewhere.stderr
    port = yaml.safe_load(elsewhere.stdout)["services"]["web"]["ports"][0]
    assert (
        (port["host_ip"], str(port["published"])) == ("10.0.0.7", "8443")
        if isinstance(port, dict)
        else "10.0.0.7:8443" in port
    )


def test_web_token_is_required(tmp_path: Path) -> None:
    result = _config(tmp_path, {k: v for k, v in SECRETS.items() if k != "WEB_TOKEN"})
    assert result.returncode != 0 and "WEB_TOKEN" in result.stderr

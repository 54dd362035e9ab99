"""Settings are read at import time, so these tests start a fresh interpreter with a
controlled environment, as an operator's process would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runs.encryption import generate_key

ROOT = Path(__file__).resolve().parent.parent
# Each test starts `manage.py` in a fresh interpreter (a full Django start, about a second).
pytestmark = pytest.mark.slow

SECRET = "x" * 30 + "-production-like-secret-key-value-0123456789"


def _env(**values: str) -> dict[str, str]:
    env = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "dashboard.settings"}
    env.update(values)
    return env


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=_env(**env),
                          capture_output=True, text=True, timeout=60)


def _production(**extra: str) -> dict[str, str]:
    return {"SECRET_KEY": SECRET, "CREDENTIALS_ENCRYPTION_KEYS": generate_key("prod1"),
            "ALLOWED_HOSTS": "dashboard.example.com", **extra}


def test_it_passes_check_deploy_with_production_variables():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **_production())
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_it_refuses_to_start_without_a_secret_key():
    env = _production()
    del env["SECRET_KEY"]
    result = _manage("check", **env)
    assert result.returncode != 0
    assert "runs.E001" in result.stderr and "SECRET_KEY is not set" in result.stderr


@pytest.mark.parametrize("value", ["", "k1:tooshort", "nocolon"])
def test_it_refuses_to_start_without_a_valid_key_ring(value):
    result = _manage("check", **_production(CREDENTIALS_ENCRYPTION_KEYS=value))
    assert result.returncode != 0
    assert "runs.E002" in result.stderr


def test_debug_still_needs_the_encryption_keys():
    result = _manage("check", DEBUG="true")
    assert "runs.E002" in result.stderr and "runs.E001" not in result.stderr


def test_the_wsgi_application_refuses_to_boot_without_keys():
    code = "import dashboard.wsgi"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT,
                            env=_env(SECRET_KEY=SECRET, ALLOWED_HOSTS="x"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "CREDENTIALS_ENCRYPTION_KEYS is not set" in result.stderr


def test_secrets_can_come_from_files(tmp_path):
    (tmp_path / "secret").write_text(SECRET + "\n")
    (tmp_path / "keys").write_text(generate_key("filekey") + "\n")
    env = _production(SECRET_KEY_FILE=str(tmp_path / "secret"),
                      CREDENTIALS_ENCRYPTION_KEYS_FILE=str(tmp_path / "keys"))
    del env["SECRET_KEY"], env["CREDENTIALS_ENCRYPTION_KEYS"]
    result = _manage("check", **env)
    assert result.returncode == 0, result.stderr


def test_it_refuses_a_variable_and_its_file_together(tmp_path):
    (tmp_path / "secret").write_text(SECRET)
    result = _manage("check", **_production(SECRET_KEY_FILE=str(tmp_path / "secret")))
    assert result.returncode != 0
    assert "Set SECRET_KEY or SECRET_KEY_FILE, not both" in result.stderr


def test_it_refuses_a_boolean_it_cannot_read():
    result = _manage("check", **_production(DEBUG="maybe"))
    assert result.returncode != 0
    assert "DEBUG must be true or false" in result.stderr


def test_database_url_switches_to_postgresql():
    code = "from django.conf import settings; print(settings.DATABASES['default']['ENGINE'])"
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"], cwd=ROOT,
        env=_env(**_production(DATABASE_URL="postgres://u:p@db.example.com:5432/dash")),
        capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "django.db.backends.postgresql", result.stderr

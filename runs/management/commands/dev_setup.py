from __future__ import annotations

import secrets
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from runs.models import EnvironmentProfile

DEMO_PROFILES = [
    # (name, environment ID): the simulator makes "fail-<mode>" environments misbehave.
    ("Demo (simulated Coalesce)", "demo"),
    ("Demo: Coalesce unavailable (simulated)", "fail-http500"),
]


class Command(BaseCommand):
    help = (
        "Local development only (called by `make run`): create an admin account with a random "
        "password once, remembered in --credentials-file, and the demo profiles that point at "
        "the local Coalesce simulator. Safe to run again; it never changes existing data."
    )

    def add_arguments(self, parser):
        parser.add_argument("--credentials-file", required=True, type=Path)
        parser.add_argument("--simulator-url", required=True)
        parser.add_argument("--simulator-token", required=True)

    def handle(self, *args, credentials_file, simulator_url, simulator_token, **options):
        self._ensure_admin(credentials_file)
        created = ensure_demo_profiles(simulator_url, simulator_token)
        if created:
            self.stdout.write(f"Created demo profiles: {', '.join(created)}")

    def _ensure_admin(self, path: Path) -> None:
        User = get_user_model()
        if path.exists() and User.objects.filter(username="admin").exists():
            self.stdout.write(path.read_text().strip())
            return
        if User.objects.filter(username="admin").exists():
            self.stdout.write("The account 'admin' exists but its password file is gone; "
                              "set a new one with `manage.py changepassword admin`.")
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser("admin", "", password)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"Log in at http://127.0.0.1:8000/ as admin / {password}\n")
        path.chmod(0o600)
        self.stdout.write(path.read_text().strip())


@transaction.atomic
def ensure_demo_profiles(base_url: str, token: str) -> list[str]:
    """Create the demo profiles that do not exist yet; return the names created."""
    created = []
    for name, environment_id in DEMO_PROFILES:
        if EnvironmentProfile.objects.filter(name=name).exists():
            continue
        profile = EnvironmentProfile(
            name=name,
            base_url=base_url,
            environment_id=environment_id,
            default_job_id="1",
            snowflake_auth_type=EnvironmentProfile.AuthType.OAUTH,
        )
        profile.set_secret("api_token", token, by="make run")
        profile.save()
        created.append(name)
    return created

"""WSGI entry point: `gunicorn dashboard.wsgi`."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")

application = get_wsgi_application()

# gunicorn runs no system checks: refuse to boot without the secret and encryption keys.
from runs.checks import raise_on_configuration_errors  # noqa: E402

raise_on_configuration_errors()

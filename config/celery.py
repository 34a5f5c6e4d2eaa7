"""The Celery app. Tasks live in each app's tasks.py and are found by autodiscovery."""
from __future__ import annotations

import os

from celery import Celery
from kombu.transport import TRANSPORT_ALIASES

# The embedded broker: a folder transport with atomic writes (see embedded_broker).
TRANSPORT_ALIASES.setdefault("embedded", "config.embedded_broker:Transport")

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("pushflow")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

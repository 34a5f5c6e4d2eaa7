"""Test settings: the real settings, with a throw-away var/ and the database chosen by
PUSHFLOW_TEST_DATABASE (sqlite, the default, or postgres on 127.0.0.1)."""
import os
import tempfile

os.environ.setdefault("PUSHFLOW_VAR_DIR", tempfile.mkdtemp(prefix="pushflow-test-"))

from config.settings import *  # noqa: E402,F403
from config.settings import DATABASES  # noqa: E402

if os.environ.get("PUSHFLOW_TEST_DATABASE") == "postgres":
    import dj_database_url

    DATABASES["default"] = dj_database_url.parse(
        os.environ.get("PUSHFLOW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    )
    # Worker threads (sync runs) close their connections after each run, so the test database can be dropped.
    DATABASES["default"]["CONN_MAX_AGE"] = 0

else:
    # A file, as in production: an in-memory shared-cache database locks whole tables and
    # fails concurrent writers at once instead of waiting out the busy timeout.
    DATABASES["default"]["TEST"] = {"NAME": os.path.join(os.environ["PUSHFLOW_VAR_DIR"], "test.sqlite3")}

# Publishing runs the task inline: unit tests see the whole path without a worker.
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
# Test transactions would hide rows from the writer thread; tests/listeners/test_group_writer.py turns it on.
PUSHFLOW_GROUP_COMMIT = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405  whitenoise warns about a missing folder

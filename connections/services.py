"""Actions on connections across the registry: testing one."""
from __future__ import annotations

from .crypto import SecretsUnreadable
from .models import Connection
from .transports import TransportError


def test_connection(connection: Connection) -> tuple[bool, str]:
    """Ask the connection's transport whether it works: (ok, what a person should know)."""
    try:
        return True, connection.transport.test(connection.options or {}, connection.secrets)
    except TransportError as exc:
        return False, exc.reason
    except SecretsUnreadable as exc:
        return False, str(exc)

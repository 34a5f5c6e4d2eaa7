from django.apps import AppConfig


class ConnectionsConfig(AppConfig):
    name = "connections"

    def ready(self):
        from . import transports  # noqa: F401  fills the transport registry

from django.apps import AppConfig


class ListenersConfig(AppConfig):
    name = "listeners"

    def ready(self):
        from .cache import connect_signals

        connect_signals()

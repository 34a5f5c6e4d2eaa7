from django.apps import AppConfig


class FormatsConfig(AppConfig):
    name = "formats"

    def ready(self):
        from . import codecs  # noqa: F401  fills the codec registry

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self):
        from . import lockout, schema  # noqa: F401  signal receivers; OpenAPI auth descriptions

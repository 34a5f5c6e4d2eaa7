from django.apps import AppConfig


class ListenersConfig(AppConfig):
    name = "listeners"

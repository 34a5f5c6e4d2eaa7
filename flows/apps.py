from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class FlowsConfig(AppConfig):
    name = "flows"

    def ready(self):
        from .models import Flow

        post_save.connect(_flow_saved, sender=Flow, dispatch_uid="flows-schedule-save")
        post_delete.connect(_flow_deleted, sender=Flow, dispatch_uid="flows-schedule-delete")


def _flow_saved(sender, instance, **kwargs):
    from .schedules import sync_schedule

    sync_schedule(instance)


def _flow_deleted(sender, instance, **kwargs):
    from .schedules import remove_schedule

    remove_schedule(instance.pk)

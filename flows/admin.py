from django.contrib import admin

from .models import Flow, FlowRun


@admin.register(Flow)
class FlowAdmin(admin.ModelAdmin):
    list_display = ("name", "listener", "trigger", "enabled", "owner", "version")
    list_filter = ("trigger", "enabled")
    search_fields = ("name",)


@admin.register(FlowRun)
class FlowRunAdmin(admin.ModelAdmin):
    list_display = ("id", "flow", "message", "status", "started_at", "records_in", "records_out", "records_rejected")
    list_filter = ("status",)
    readonly_fields = [f.name for f in FlowRun._meta.fields]

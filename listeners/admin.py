from django.contrib import admin

from .models import Listener, Message


@admin.register(Listener)
class ListenerAdmin(admin.ModelAdmin):
    list_display = ("name", "path", "mode", "auth", "enabled", "owner")
    list_filter = ("mode", "auth", "enabled")
    search_fields = ("name", "path")
    exclude = ("secrets_encrypted",)
    filter_horizontal = ("allowed_users",)


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "listener", "flow", "status", "received_at", "size", "attempts")
    list_filter = ("status", "listener")
    search_fields = ("id", "idempotency_key")
    exclude = ("body", "body_text", "response_body")
    readonly_fields = [f.name for f in Message._meta.fields if f.name not in ("body", "body_text", "response_body")]

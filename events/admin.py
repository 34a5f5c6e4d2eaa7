"""Admin views of subscriptions, deliveries and queues (read mostly; secrets never shown)."""
from django.contrib import admin

from .models import Delivery, Output, Queue, Subscription


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ("id", "url", "owner", "enabled", "consecutive_failures")
    exclude = ("secret_encrypted",)


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("id", "subscription", "event", "status", "attempts", "last_status_code", "created_at")
    list_filter = ("status", "event")


@admin.register(Output)
class OutputAdmin(admin.ModelAdmin):
    list_display = ("id", "flow", "entity_name", "content_type", "size", "created_at")


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "lease_seconds")

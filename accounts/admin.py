from django.contrib import admin

from .models import ApiToken, AuditEntry


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("user", "prefix", "created_at", "expires_at", "last_used_at")
    readonly_fields = ("key_hash", "prefix", "created_at", "last_used_at")
    search_fields = ("user__username", "prefix")


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ("at", "user", "action", "object_type", "object_name", "object_id")
    list_filter = ("action", "object_type")
    search_fields = ("object_name", "object_id", "user__username")
    readonly_fields = [f.name for f in AuditEntry._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

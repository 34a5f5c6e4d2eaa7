from django.contrib import admin

from .models import Format


@admin.register(Format)
class FormatAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "owner", "updated_at")
    list_filter = ("kind",)
    search_fields = ("name",)

"""Top-level URLs: ingest, API, admin, health and pages."""
from django.contrib import admin
from django.urls import include, path

from .health import healthz

urlpatterns = [
    path("", include("listeners.urls")),
    path("api/v1/", include("config.api_urls")),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("", include("frontend.urls")),
]

from django.urls import path

from . import views

urlpatterns = [path("listen/<path:path>", views.ingest, name="ingest")]

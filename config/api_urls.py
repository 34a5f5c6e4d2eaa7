"""/api/v1/: the REST API router, the token endpoint and the OpenAPI schema and docs."""
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from accounts.api.audit import AuditEntryViewSet
from connections.api.views import ConnectionViewSet
from events.api.views import OutputViewSet, QueueViewSet, SubscriptionViewSet
from flows.api.views import FlowRunViewSet, FlowViewSet
from formats.api.views import FormatViewSet
from listeners.api.views import ListenerViewSet, MessageViewSet


class OptionalSlashRouter(DefaultRouter):
    """Routes with or without the final slash: the contract writes actions without one
    (/messages/{id}/body, /connections/{id}/test) and collections with one (/formats/)."""

    def __init__(self):
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("formats", FormatViewSet, basename="format")
router.register("connections", ConnectionViewSet, basename="connection")
router.register("listeners", ListenerViewSet, basename="listener")
router.register("flows", FlowViewSet, basename="flow")
router.register("messages", MessageViewSet, basename="message")
router.register("runs", FlowRunViewSet, basename="run")
router.register("audit", AuditEntryViewSet, basename="audit")
router.register("subscriptions", SubscriptionViewSet, basename="subscription")
router.register("queues", QueueViewSet, basename="queue")
router.register("outputs", OutputViewSet, basename="output")

urlpatterns = [
    path("", include("accounts.api.urls")),
    path("schema", SpectacularAPIView.as_view(), name="schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("", include(router.urls)),
]

"""Subscriptions (with their delivery log and redelivery), pull queues (next, ack) and kept outputs (signed download)."""
from __future__ import annotations

from django.db import transaction
from django.http import FileResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.audit import record_change
from config.api import IsOwnerOrAdmin, OwnedModelViewSet, visible_to
from connections.crypto import encrypt_secrets
from events import services
from events.models import Delivery, Output, Queue, Subscription
from events.signing import DownloadRefused, check_download, download_url, new_webhook_secret

from .serializers import DeliverySerializer, OutputSerializer, QueueSerializer, SubscriptionSerializer

ROTATED = inline_serializer("RotatedSecret", {
    "id": serializers.IntegerField(),
    "secret": serializers.CharField(help_text="The new `whsec_` secret: shown this once."),
    "previous_secret_expires_at": serializers.DateTimeField(allow_null=True,
                                                            help_text="Until then the old secret signs deliveries too."),
})


class SubscriptionViewSet(OwnedModelViewSet):
    """Webhook subscriptions. The signing secret (`whsec_...`) is answered once, on create."""

    queryset = Subscription.objects.all()
    serializer_class = SubscriptionSerializer

    def create(self, request, *args, **kwargs):
        response = super().create(request, *args, **kwargs)
        response.data["secret"] = self._new_secret  # only here, only once
        return response

    def perform_create(self, serializer):
        self._new_secret = new_webhook_secret()
        with transaction.atomic():
            instance = serializer.save(owner=self.request.user, secret_encrypted=encrypt_secrets({"secret": self._new_secret}))
            record_change(self.request.user, "create", instance, None, self.get_serializer(instance).data, [])

    def perform_update(self, serializer):
        was_enabled = serializer.instance.enabled
        super().perform_update(serializer)
        if serializer.instance.enabled and not was_enabled:
            services.enable_subscription(serializer.instance)

    @extend_schema(request=None, responses={200: ROTATED, 400: OpenApiResponse(description="a body was sent"),
                                            403: OpenApiResponse(description="only the owner rotates")})
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, pk=None):
        """A new signing secret, answered this once. Deliveries carry the old secret's signature as well until
        `previous_secret_expires_at` (PUSHFLOW_WEBHOOK_SECRET_GRACE_SECONDS), so the receiver can switch at leisure."""
        subscription = self.get_object()
        if request.data:
            return Response({"detail": "rotate-secret takes no body: Pushflow makes the new secret and answers it once"},
                            status=status.HTTP_400_BAD_REQUEST)
        secret = services.rotate_secret(subscription, by=request.user)
        return Response({"id": subscription.pk, "secret": secret,
                         "previous_secret_expires_at": subscription.previous_secret_expires_at})

    @extend_schema(request=None, responses=DeliverySerializer(many=True))
    @action(detail=True, methods=["get"], url_path="deliveries")
    def deliveries(self, request, pk=None):
        """The subscription's deliveries, newest first, each with its attempts."""
        subscription = self.get_object()
        queryset = Delivery.objects.filter(subscription=subscription).prefetch_related("attempt_log")
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(DeliverySerializer(page, many=True).data)

    @extend_schema(request=None, responses={202: OpenApiResponse(description="queued to be sent again now"),
                                            404: OpenApiResponse(description="no such delivery"),
                                            409: OpenApiResponse(description="being sent right now")})
    @action(detail=True, methods=["post"], url_path=r"deliveries/(?P<delivery_id>[0-9]{1,18})/redeliver")
    def redeliver(self, request, pk=None, delivery_id=None):
        """Send a delivery again now (same webhook-id, fresh timestamp and signature)."""
        subscription = self.get_object()
        delivery = Delivery.objects.filter(subscription=subscription, pk=delivery_id).first()
        if delivery is None:
            return Response({"detail": "no such delivery of this subscription"}, status=status.HTTP_404_NOT_FOUND)
        try:
            services.redeliver(delivery)
        except services.DeliveryRefused as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response({"id": delivery.pk, "status": "queued"}, status=status.HTTP_202_ACCEPTED)


LEASE = inline_serializer("QueueLease", {
    "id": serializers.UUIDField(help_text="The lease id; acknowledge with it."),
    "lease_expires_at": serializers.DateTimeField(), "flow": serializers.IntegerField(),
    "run": serializers.IntegerField(allow_null=True), "message": serializers.UUIDField(allow_null=True),
    "output": serializers.IntegerField(), "entity_name": serializers.CharField(), "content_type": serializers.CharField(),
    "size": serializers.IntegerField(), "download_url": serializers.URLField(),
})


class QueueViewSet(OwnedModelViewSet):
    """Pull queues, addressed by name: `next` leases the oldest output, `ack/{id}` removes it."""

    queryset = Queue.objects.all()
    serializer_class = QueueSerializer
    lookup_field = "name"
    lookup_value_regex = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"
    team_actions = ("next", "ack")  # a member of a team it is shared with polls it; only the owner changes it

    @extend_schema(request=None, responses={200: LEASE, 204: OpenApiResponse(description="the queue is empty")})
    @action(detail=True, methods=["get"], url_path="next")
    def next(self, request, name=None):
        queue = self.get_object()
        item = services.lease_next(queue)
        if item is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        output = item.output
        url, _ = download_url(output.pk, request)
        return Response({
            "id": str(item.lease_id), "lease_expires_at": item.lease_expires_at, "flow": output.flow_id, "run": output.run_id,
            "message": str(output.message_id) if output.message_id else None, "output": output.pk,
            "entity_name": output.entity_name, "content_type": output.content_type, "size": output.size, "download_url": url,
        })

    @extend_schema(request=None, responses={204: OpenApiResponse(description="acknowledged: removed from the queue"),
                                            404: OpenApiResponse(description="no item is held under this lease")})
    @action(detail=True, methods=["post"], url_path=r"ack/(?P<lease_id>[^/]{1,100})")
    def ack(self, request, name=None, lease_id=None):
        queue = self.get_object()
        try:
            services.acknowledge(queue, lease_id)
        except services.QueueRefused as exc:
            return Response({"detail": exc.reason}, status=exc.status)
        return Response(status=status.HTTP_204_NO_CONTENT)


class OutputViewSet(viewsets.ReadOnlyModelViewSet):
    """Kept flow outputs; each is fetched through an expiring signed URL."""

    queryset = Output.objects.all()
    serializer_class = OutputSerializer
    permission_classes = [permissions.IsAuthenticated, IsOwnerOrAdmin]
    lookup_value_regex = "[0-9]{1,18}"

    def get_queryset(self):
        return visible_to(self.request.user, Output.objects.all())

    def retrieve(self, request, *args, **kwargs):
        data = self.get_serializer(self.get_object()).data
        data["download_url"], _ = download_url(data["id"], request)
        return Response(data)

    @extend_schema(parameters=[OpenApiParameter("expires", int), OpenApiParameter("signature", str)],
                   responses={(200, "application/octet-stream"): OpenApiResponse(description="the output file"),
                              403: OpenApiResponse(description="expired or altered URL")})
    @action(detail=True, methods=["get"], url_path="download", permission_classes=[permissions.AllowAny],
            authentication_classes=[])
    def download(self, request, pk=None):
        """The output file. No login: the URL's signature is the permission, until it expires."""
        try:
            check_download(int(pk), request.query_params.get("expires"), request.query_params.get("signature"))
        except DownloadRefused as exc:
            return Response({"detail": exc.reason}, status=status.HTTP_403_FORBIDDEN)
        output = Output.objects.filter(pk=pk).first()
        if output is None or not output.file.is_file():
            return Response({"detail": "this output is no longer kept"}, status=status.HTTP_404_NOT_FOUND)
        suffix = output.path.rsplit(".", 1)[-1]
        name = "".join(c if c.isalnum() or c in "-_" else "_" for c in output.entity_name)[:80] or "output"
        return FileResponse(output.file.open("rb"), as_attachment=True, filename=f"{name}-{output.pk}.{suffix}",
                            content_type=output.content_type or "application/octet-stream")

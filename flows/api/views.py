from rest_framework import viewsets
from rest_framework.exceptions import ValidationError

from config.api import IsOwnerOrAdmin, OwnedModelViewSet, id_param, uuid_param, visible_to
from flows.models import Flow, FlowRun

from .serializers import FlowRunSerializer, FlowSerializer


class FlowViewSet(OwnedModelViewSet):
    queryset = Flow.objects.all()
    serializer_class = FlowSerializer


class FlowRunViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = FlowRun.objects.all()  # the model, for the schema; get_queryset() filters
    serializer_class = FlowRunSerializer
    permission_classes = viewsets.ReadOnlyModelViewSet.permission_classes + [IsOwnerOrAdmin]
    owner_field = "flow__owner"

    def get_queryset(self):
        queryset = visible_to(self.request.user, FlowRun.objects.all(), "flow__owner")
        params = self.request.query_params
        flow = id_param(params, "flow")
        if flow is not None:
            queryset = queryset.filter(flow_id=flow)
        message = uuid_param(params, "message")
        if message is not None:
            queryset = queryset.filter(message_id=message)
        if params.get("status"):
            if params["status"] not in FlowRun.Status.values:
                raise ValidationError({"status": [f"use one of {', '.join(FlowRun.Status.values)}"]})
            queryset = queryset.filter(status=params["status"])
        return queryset.order_by("-started_at", "-id")

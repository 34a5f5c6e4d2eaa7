"""GET /api/v1/audit/: the configuration change log, for administrators only."""
from rest_framework import permissions, serializers, viewsets

from accounts.models import AuditEntry


class AuditEntrySerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = AuditEntry
        fields = ["id", "at", "user", "action", "object_type", "object_id", "object_name", "changes"]
        read_only_fields = fields


class AuditEntryViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = AuditEntry.objects.select_related("user")
    serializer_class = AuditEntrySerializer
    permission_classes = [permissions.IsAdminUser]

    def get_queryset(self):
        queryset = super().get_queryset()
        for name in ("object_type", "object_id", "action"):
            if self.request.query_params.get(name):
                queryset = queryset.filter(**{name: self.request.query_params[name]})
        return queryset

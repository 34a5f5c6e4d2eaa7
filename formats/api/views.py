from config.api import OwnedModelViewSet
from formats.models import Format

from .serializers import FormatSerializer


class FormatViewSet(OwnedModelViewSet):
    queryset = Format.objects.all()
    serializer_class = FormatSerializer

"""Home page: the user's listeners and their most recent messages."""
from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from config.api import visible_to
from listeners.models import Listener, Message


@login_required
def home(request):
    listeners = visible_to(request.user, Listener.objects.select_related("flow")).order_by("name")
    messages = (
        visible_to(request.user, Message.objects.select_related("listener", "flow"))
        .defer("body", "body_text", "response_body")
        .order_by("-received_at")[:50]
    )
    return render(request, "frontend/home.html", {"listeners": listeners, "recent": messages})

"""The subscriptions page (each with its delivery log and a redeliver button) and the queues page (with
their depth). Only presents: the work is in events.services."""
from __future__ import annotations

from django.contrib import messages as notices
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from config.api import visible_to
from events.models import Delivery, Queue, Subscription
from events.services import DeliveryRefused, queue_depths, redeliver, rotate_secret

DELIVERIES_SHOWN = 20


@login_required
def subscription_list(request, rotated: dict | None = None):
    """`rotated`: a subscription's new secret, shown this once beside it (never kept for a later page)."""
    subscriptions = list(visible_to(request.user, Subscription.objects.select_related("owner").prefetch_related("flows", "listeners")))
    for subscription in subscriptions:
        subscription.recent = list(Delivery.objects.filter(subscription=subscription).defer("payload").prefetch_related(
            "attempt_log")[:DELIVERIES_SHOWN])
        if rotated and rotated["pk"] == subscription.pk:
            subscription.new_secret = rotated["secret"]
    return render(request, "frontend/subscriptions.html", {"subscriptions": subscriptions})


@login_required
@require_POST
def subscription_rotate_secret(request, pk: int):
    subscription = visible_to(request.user, Subscription.objects.all()).filter(pk=pk).first()
    if subscription is None:
        raise Http404("no such subscription")
    if not (request.user.is_superuser or subscription.owner_id == request.user.pk):
        raise PermissionDenied("only the subscription's owner rotates its secret; its team members read it")
    secret = rotate_secret(subscription, by=request.user)
    # Answered as the page itself, not a redirect: the secret must not wait in the session for the next page.
    return subscription_list(request, rotated={"pk": subscription.pk, "secret": secret})


@login_required
@require_POST
def delivery_redeliver(request, pk: int, delivery_id: int):
    subscription = visible_to(request.user, Subscription.objects.all()).filter(pk=pk).first()
    delivery = Delivery.objects.filter(subscription=subscription, pk=delivery_id).first() if subscription else None
    if delivery is None:
        raise Http404("no such delivery")
    if not (request.user.is_superuser or subscription.owner_id == request.user.pk):
        raise PermissionDenied("only the subscription's owner sends a delivery again; its team members read the log")
    try:
        redeliver(delivery)
        notices.success(request, f"Delivery {delivery.pk} is being sent again.")
    except DeliveryRefused as exc:
        notices.error(request, str(exc))
    return redirect(f"/subscriptions/#subscription-{subscription.pk}")


@login_required
def queue_list(request):
    queues = list(visible_to(request.user, Queue.objects.prefetch_related("flows")))
    depths = queue_depths(queues)
    for queue in queues:
        queue.depth = depths[queue.pk]
    return render(request, "frontend/queues.html", {"queues": queues})

"""Pushflow's URLs plus /bench/bare, a Django view that reads the body and answers 200."""
from django.http import HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from config.urls import urlpatterns as pushflow_urlpatterns


@csrf_exempt
def bare(request):
    request.body  # noqa: B018  read the body like any real view would
    return HttpResponse(b'{"ok":true}', content_type="application/json")


urlpatterns = [path("bench/bare", bare), *pushflow_urlpatterns]

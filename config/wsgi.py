"""WSGI entry point (served by gunicorn).

`/listen/` requests take a lean path: the listener view with only the security
middleware (HTTPS redirect, HSTS and content-type headers). Sessions, CSRF, user
authentication and messages exist for the pages and the API; a pushed payload uses
none of them, and under load their per-request work was measurable. Everything
else goes through the full stack.
"""
import os

from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

LEAN_PREFIX = "/listen/"
LEAN_MIDDLEWARE = "django.middleware.security.SecurityMiddleware"


class ListenerHandler(WSGIHandler):
    """A Django handler whose middleware chain is only the security middleware."""

    def load_middleware(self, is_async=False):
        from django.conf import settings
        from django.utils.module_loading import import_string

        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        handler = convert_exception_to_response(self._get_response)
        if LEAN_MIDDLEWARE in settings.MIDDLEWARE:
            handler = convert_exception_to_response(import_string(LEAN_MIDDLEWARE)(handler))
        self._middleware_chain = handler

    def get_response(self, request):
        response = super().get_response(request)
        # As CommonMiddleware does on the full stack: simple clients (devices, HL7 gateways)
        # expect a Content-Length rather than a chunked answer.
        if not response.streaming and not response.has_header("Content-Length"):
            response.headers["Content-Length"] = str(len(response.content))
        return response


_full = get_wsgi_application()
_lean = ListenerHandler()


def application(environ, start_response):
    if environ.get("PATH_INFO", "").startswith(LEAN_PREFIX):
        return _lean(environ, start_response)
    return _full(environ, start_response)

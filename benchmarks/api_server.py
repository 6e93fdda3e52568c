"""What the API benchmark's gunicorn serves: the app as it is, plus one trivial endpoint.

    gunicorn benchmarks.api_server:application      (benchmarks/api.py starts it)

``GET /bench/ping`` is benchmarks/api.py's baseline: a DRF view behind the same API key
authentication, scope check and per-client throttle as every /api/v1/ view (it is a
``reference`` resource, like /api/v1/species), that reads nothing else and answers a constant.
``GET /bench/worker`` names the worker process that served it: the client spreads its
connections evenly over the workers with it before it measures.
It exists only here. The app's own URLconf (vetclinic/urls.py) is included unchanged, and
this module is the ROOT_URLCONF only in the processes started from it.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vetclinic.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

application = get_wsgi_application()
override_settings(ROOT_URLCONF=__name__).enable()

from django.urls import include, path  # noqa: E402
from rest_framework.response import Response  # noqa: E402
from rest_framework.views import APIView  # noqa: E402

from vetclinic.urls import handler404, handler500  # noqa: E402, F401


class Ping(APIView):
    """Authenticated (API key), scope-checked (reference:read) and throttled like the API."""

    resource = "reference"

    def get(self, request):
        return Response({"status": "ok"})


class Worker(APIView):
    """Which gunicorn worker holds this connection (not measured)."""

    resource = "reference"

    def get(self, request):
        return Response({"pid": os.getpid()})


urlpatterns = [
    path("bench/ping", Ping.as_view(), name="bench_ping"),
    path("bench/worker", Worker.as_view(), name="bench_worker"),
    path("", include("vetclinic.urls")),
]

"""Each feature's pages have their own url module; this one gathers them for vetclinic/urls.py."""

from django.urls import include, path

urlpatterns = [
    path("", include("imaging.reconcile.urls")),
    path("", include("imaging.studies.urls")),
    path("", include("imaging.reports.urls")),
    path("", include("imaging.orders.urls")),
    path("", include("imaging.export.urls")),
]

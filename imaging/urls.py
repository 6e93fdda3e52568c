"""Each feature's pages have their own url module; this one gathers them for vetclinic/urls.py."""
from django.urls import include, path

from imaging import views

urlpatterns = [
    path("reconciliation/", views.reconciliation, name="reconciliation"),
    path("studies/<int:pk>/link/", views.study_link, name="study_link"),
    path("studies/series/<int:pk>/split/", views.series_split, name="series_split"),
    path("", include("imaging.orders.urls")),
    path("", include("imaging.studies.urls")),
    path("", include("imaging.reports.urls")),
]

"""/dicomweb/...: the PS3.18 resources, each URL as the standard spells it (no trailing slash)."""

from django.urls import path

from integrations.dicomweb import qido

app_name = "dicomweb"

urlpatterns: list = [
    # QIDO-RS (qido.py), PS3.18 10.6
    path("studies", qido.StudySearch.as_view(), name="studies"),
    path("series", qido.SeriesSearch.as_view(), name="series"),
    path("instances", qido.InstanceSearch.as_view(), name="instances"),
    path("studies/<str:study>/series", qido.SeriesSearch.as_view(), name="study-series"),
    path("studies/<str:study>/instances", qido.InstanceSearch.as_view(), name="study-instances"),
    path(
        "studies/<str:study>/series/<str:series>/instances",
        qido.InstanceSearch.as_view(),
        name="series-instances",
    ),
    # WADO-RS (wado.py)
    # STOW-RS (stow.py)
]

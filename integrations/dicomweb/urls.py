"""/dicomweb/...: the PS3.18 resources, each URL as the standard spells it (no trailing slash)."""

from django.urls import path  # noqa: F401  # the sections below add their paths

app_name = "dicomweb"

urlpatterns: list = [
    # QIDO-RS (qido.py)
    # WADO-RS (wado.py)
    # STOW-RS (stow.py)
]

"""/dicomweb/...: the PS3.18 resources, each URL as the standard spells it (no trailing slash)."""

from django.urls import path

from integrations.dicomweb import stow
from integrations.dicomweb.base import by_method

app_name = "dicomweb"

urlpatterns: list = [
    # QIDO-RS (qido.py)
    # WADO-RS (wado.py)
    # STOW-RS (stow.py). /studies and /studies/{study} are QIDO-RS's and WADO-RS's too (GET):
    # one pattern each, by_method dispatching (base.py).
    path("studies", by_method(POST=stow.StudiesStore.as_view()), name="studies"),
    path("studies/<str:study>", by_method(POST=stow.StudiesStore.as_view()), name="study"),
]

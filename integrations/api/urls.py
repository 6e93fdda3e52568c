from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from integrations.api import reference

urlpatterns = [
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api_schema"), name="api_docs"),
    path("api/v1/health", reference.Health.as_view(), name="api_health"),
    path("api/v1/species", reference.SpeciesList.as_view(), name="api_species"),
    path("api/v1/breeds", reference.BreedList.as_view(), name="api_breeds"),
    path("api/v1/modalities", reference.ModalityList.as_view(), name="api_modalities"),
    path("api/v1/procedures", reference.ProcedureList.as_view(), name="api_procedures"),
]

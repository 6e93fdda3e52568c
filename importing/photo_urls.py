"""The photo upload's page and API address. Included before integrations.api.urls, whose last
pattern answers every other /api/v1/ address with a 404."""

from django.urls import path

from importing import photo_views

urlpatterns = [
    path("patients/<int:pk>/photos/", photo_views.photo_upload_page, name="photo_upload"),
    path("api/v1/patients/<int:pk>/photos", photo_views.PatientPhotos.as_view(), name="api_patient_photos"),
]

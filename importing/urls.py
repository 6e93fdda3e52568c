from django.urls import path

from importing import api, views

urlpatterns = [
    path("imports/", views.upload_create, name="upload_create"),
    path("imports/<int:pk>/", views.upload_detail, name="upload_detail"),
    path("api/v1/uploads", api.UploadList.as_view(), name="api_uploads"),
    path("api/v1/uploads/<int:pk>", api.UploadDetail.as_view(), name="api_upload"),
]

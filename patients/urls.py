from django.urls import path

from patients import views

urlpatterns = [
    path("", views.home, name="home"),
    path("owners/new/", views.owner_create, name="owner_create"),
    path("owners/<int:pk>/", views.owner_detail, name="owner_detail"),
    path("owners/<int:pk>/edit/", views.owner_edit, name="owner_edit"),
    path("owners/<int:owner_pk>/patients/new/", views.patient_create, name="owner_patient_create"),
    path("patients/new/", views.patient_create, name="patient_create"),
    path("patients/breeds/", views.breed_options, name="breed_options"),
    path("patients/<int:pk>/", views.patient_detail, name="patient_detail"),
    path("patients/<int:pk>/edit/", views.patient_edit, name="patient_edit"),
    path("patients/<int:pk>/owners/search/", views.owner_search, name="owner_search"),
    path("patients/<int:pk>/owners/add/", views.ownership_add, name="ownership_add"),
    path("patients/<int:pk>/visits/new/", views.visit_create, name="visit_create"),
    path("patients/<int:pk>/merge/", views.patient_merge, name="patient_merge"),
    path("visits/<int:pk>/edit/", views.visit_edit, name="visit_edit"),
]

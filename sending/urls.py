from django.urls import path

from sending import views

urlpatterns = [
    path("studies/<int:pk>/sends/", views.study_sends, name="study_sends"),
    path("studies/<int:pk>/sends/new/", views.study_send_form, name="study_send"),
    path("sends/<int:pk>/dismiss/", views.send_alert_dismissed, name="send_alert_dismiss"),
]

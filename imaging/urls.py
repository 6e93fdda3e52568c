from django.urls import path

from imaging import order_views, views

urlpatterns = [
    path("reconciliation/", views.reconciliation, name="reconciliation"),
    path("studies/<int:pk>/", views.study_detail, name="study_detail"),
    path("studies/<int:pk>/report/", views.study_report, name="study_report"),
    path("studies/<int:pk>/link/", views.study_link, name="study_link"),
    path("studies/series/<int:pk>/split/", views.series_split, name="series_split"),
    path("studies/series/<int:pk>/thumbnail.png", views.series_thumbnail, name="series_thumbnail"),
    path("orders/new/", order_views.order_create, name="order_create"),
    path("orders/new/stations/", order_views.order_station_options, name="order_station_options"),
    path("orders/slots/", order_views.order_slots, name="order_slots"),
    path("orders/board/", order_views.order_board, name="order_board"),
    path("orders/<int:pk>/", order_views.order_detail, name="order_detail"),
    path("orders/<int:pk>/card/", order_views.order_card, name="order_card"),
    path("orders/<int:pk>/status/", order_views.order_status, name="order_status"),
    path("orders/<int:pk>/reschedule/", order_views.order_reschedule, name="order_reschedule"),
]

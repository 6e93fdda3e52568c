from django.urls import path

from imaging.orders import views

urlpatterns = [
    path("orders/new/", views.order_create, name="order_create"),
    path("orders/new/stations/", views.order_station_options, name="order_station_options"),
    path("orders/slots/", views.order_slots, name="order_slots"),
    path("orders/board/", views.order_board, name="order_board"),
    path("orders/<int:pk>/", views.order_detail, name="order_detail"),
    path("orders/<int:pk>/card/", views.order_card, name="order_card"),
    path("orders/<int:pk>/status/", views.order_status, name="order_status"),
    path("orders/<int:pk>/reschedule/", views.order_reschedule, name="order_reschedule"),
    path("orders/<int:pk>/edit/", views.order_edit, name="order_edit"),
]

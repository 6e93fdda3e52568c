"""The webhook API: a client's own subscriptions and the log of what was sent to them.

Scope ``webhooks:read`` lists and reads, ``webhooks:write`` subscribes, changes, deletes and
redelivers. Subscriptions belong to an API client: staff look at them in the admin.
"""

from collections.abc import Iterable
from typing import Any, cast

import django_filters
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import generics, permissions, serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from integrations.api.auth import ClientUser, ResourceScope, actor_for
from integrations.api.errors import Conflict
from integrations.api.filters import one_of, record_id
from integrations.api.pagination import Cursor
from integrations.models import ApiClient, WebhookDelivery, WebhookSubscription
from integrations.webhooks import services
from integrations.webhooks.delivery import delivery_redeliver
from integrations.webhooks.serializers import (
    EVENT_NAMES,
    WebhookDeliverySerializer,
    WebhookSubscriptionCreatedSerializer,
    WebhookSubscriptionSerializer,
)


class ClientOnly(permissions.BasePermission):
    message = (
        "Webhook subscriptions belong to an API client: call with its key (staff see them in the admin)."
    )

    def has_permission(self, request: Request, view: APIView) -> bool:
        return isinstance(request.user, ClientUser)


class WebhookView(APIView):
    resource = "webhooks"
    permission_classes = [permissions.IsAuthenticated, ResourceScope, ClientOnly]

    @property
    def client(self) -> ApiClient:
        return cast(ClientUser, self.request.user).client  # (ClientOnly lets only a client's requests in)


SUBSCRIPTION = {
    "id": 7, "url": "https://pms.example/hooks/vetpacs", "events": ["study.received", "study.completed"],
    "description": "Imaging results", "active": True, "failure_streak": 0, "failing_since": None,
    "disabled_at": None, "disabled_reason": "", "created": "2026-11-23T10:00:00Z", "updated": "2026-11-23T10:00:00Z",
}  # fmt: skip
DISABLED = {
    **SUBSCRIPTION, "active": False, "failure_streak": 50, "failing_since": "2026-11-22T09:00:00Z",
    "disabled_at": "2026-11-23T09:12:00Z",
    "disabled_reason": "Disabled after 50 failed attempts in a row since 2026-11-22T09:00:00Z.",
}  # fmt: skip
DELIVERY = {
    "id": 412, "subscription": 7, "event": "study.received", "status": "pending", "attempts": 2,
    "response_codes": [500, None], "response_status": None, "response_body": "",
    "error": "not delivered: timed out", "next_attempt_at": "2026-11-23T10:00:06Z",
    "last_attempt_at": "2026-11-23T10:00:02Z", "delivered_at": None, "created": "2026-11-23T10:00:00Z",
    "payload": {
        "id": "5b0f7c1e-8a52-4d55-9a39-1f0e6f0c2a11", "event": "study.received", "created": "2026-11-23T10:00:00Z",
        "data": {
            "order": {"id": 42, "accession_number": "VP00000042", "study_instance_uid": "2.25.1234", "status": "in_progress",
                      "procedure": "DX-THX2", "modality_type": "DX", "scheduled_start": "2026-11-23T09:45:00Z",
                      "placer_order_number": "ORD-7", "filler_order_number": "", "patient": 9,
                      "url": "https://pacs.clinic.example/orders/42/"},
            "study": {"id": 88, "study_instance_uid": "2.25.1234", "accession_number": "VP00000042",
                      "study_date": "2026-11-23", "order": 42, "patient": 9,
                      "viewer_url": "https://pacs.clinic.example/studies/88/"},
            "patient": {"id": 9, "patient_id": "P00000009", "name": "Biscuit",
                        "external_ids": [{"system": "Acme PMS", "value": "A-1001"}], "merged_into": None,
                        "url": "https://pacs.clinic.example/patients/9/"},
        },
    },
}  # fmt: skip


@extend_schema_view(
    get=extend_schema(
        summary="The calling client's webhook subscriptions",
        examples=[
            OpenApiExample("A subscription", value=SUBSCRIPTION, response_only=True),
        ],
    ),  # fmt: skip
    post=extend_schema(
        summary="Subscribe a URL to events",
        description="Each event is POSTed to the URL, signed with the secret: "
        "`VetPACS-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of '<t>.<body>'>`, with `VetPACS-Event` and "
        "`VetPACS-Delivery` headers. The secret is in this answer only. Hearing an event needs read scope on "
        "what it tells about (patients, orders, studies, reports).",
        responses={201: WebhookSubscriptionCreatedSerializer},
        examples=[
            OpenApiExample(
                "Subscribe",
                value={
                    "url": "https://pms.example/hooks/vetpacs",
                    "events": ["study.received", "study.completed"],
                    "description": "Imaging results",
                },
                request_only=True,
            ),  # fmt: skip
            OpenApiExample(
                "Created: the secret, once",
                response_only=True,
                status_codes=["201"],
                value={**SUBSCRIPTION, "secret": "whsec_Jd0Zq7…"},
            ),  # fmt: skip
        ],
    ),
)
class SubscriptionList(WebhookView, generics.ListCreateAPIView):
    serializer_class = WebhookSubscriptionSerializer

    def get_queryset(self) -> QuerySet[WebhookSubscription]:
        if getattr(self, "swagger_fake_view", False):  # the schema generator's, with no client
            return WebhookSubscription.objects.none()
        return WebhookSubscription.objects.filter(client=self.client).order_by("id")

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        subscription, secret = services.subscription_create(
            actor=actor_for(request), client=self.client, **serializer.validated_data
        )
        subscription.secret = secret
        return Response(
            WebhookSubscriptionCreatedSerializer(subscription).data, status=status.HTTP_201_CREATED
        )


@extend_schema_view(
    get=extend_schema(
        summary="A subscription; a disabled one says when and why",
        examples=[
            OpenApiExample("Active", value=SUBSCRIPTION, response_only=True),
            OpenApiExample("Disabled after a failure streak", value=DISABLED, response_only=True),
        ],
    ),  # fmt: skip
    patch=extend_schema(
        summary="Change a subscription, pause it, or turn it on again",
        examples=[OpenApiExample("Turn on again", value={"active": True}, request_only=True)],
    ),
    delete=extend_schema(summary="Unsubscribe (the delivery log goes with it)"),
)
class SubscriptionDetail(WebhookView, generics.RetrieveUpdateDestroyAPIView):
    serializer_class = WebhookSubscriptionSerializer
    http_method_names = ["get", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[WebhookSubscription]:
        return WebhookSubscription.objects.filter(client=self.client)

    def perform_update(self, serializer: serializers.BaseSerializer[WebhookSubscription]) -> None:
        subscription = serializer.instance
        assert subscription is not None  # (an update's serializer holds the record it updates)
        try:
            serializer.instance = services.subscription_update(
                actor=actor_for(self.request), subscription=subscription, fields=serializer.validated_data
            )
        except WebhookSubscription.DoesNotExist:  # deleted by another request since it was read
            raise NotFound() from None

    def perform_destroy(self, instance: WebhookSubscription) -> None:
        services.subscription_delete(actor=actor_for(self.request), subscription=instance)


class NewestFirst(Cursor):
    ordering = "-id"


def choose_from(allowed: Iterable[str]) -> str:
    return f"Choose from {', '.join(allowed)}."


class DeliveryFilter(django_filters.FilterSet):
    status = one_of("status", WebhookDelivery.Status.values, choose_from(WebhookDelivery.Status.values))
    event = one_of("event", EVENT_NAMES, choose_from(EVENT_NAMES))
    subscription = record_id("subscription_id", "One subscription's deliveries")

    class Meta:
        model = WebhookDelivery
        fields: list[str] = []


@extend_schema_view(get=extend_schema(
    summary="What was sent to the client's subscriptions, newest first",
    examples=[OpenApiExample("Retrying", value=DELIVERY, response_only=True)],
))  # fmt: skip
class DeliveryList(WebhookView, generics.ListAPIView):
    serializer_class = WebhookDeliverySerializer
    pagination_class = NewestFirst
    filterset_class = DeliveryFilter

    def get_queryset(self) -> QuerySet[WebhookDelivery]:
        if getattr(self, "swagger_fake_view", False):  # the schema generator's, with no client
            return WebhookDelivery.objects.none()
        return WebhookDelivery.objects.filter(subscription__client=self.client)


@extend_schema_view(get=extend_schema(
    summary="One delivery: its body and each attempt's answer",
    examples=[OpenApiExample("Retrying", value=DELIVERY, response_only=True)],
))  # fmt: skip
class DeliveryDetail(WebhookView, generics.RetrieveAPIView):
    serializer_class = WebhookDeliverySerializer

    def get_queryset(self) -> QuerySet[WebhookDelivery]:
        return WebhookDelivery.objects.filter(subscription__client=self.client)


class Redeliver(WebhookView):
    @extend_schema(
        summary="Send a delivery again now",
        description="Whatever became of it: delivered, failed, disabled or waiting for its next retry. It keeps its "
        "id (`VetPACS-Delivery`) and body. 409 while its subscription is off.",
        request=None,
        responses={202: WebhookDeliverySerializer},
        examples=[
            OpenApiExample(
                "Queued",
                value={**DELIVERY, "next_attempt_at": "2026-11-23T10:01:00Z"},
                response_only=True,
                status_codes=["202"],
            )
        ],  # fmt: skip
    )
    def post(self, request: Request, pk: int) -> Response:
        delivery = generics.get_object_or_404(
            WebhookDelivery.objects.filter(subscription__client=self.client), pk=pk
        )
        try:
            delivery = delivery_redeliver(actor=actor_for(request), delivery=delivery)
        except ValidationError as refused:
            raise Conflict(refused.messages[0]) from None
        return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)

"""The study page's "Sending" card: the send form, each send's live progress (htmx polls the card
while a send runs), and the alert of a send that finally failed."""

from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_POST

from imaging.models import Series, Study
from sending.models import Destination, Send
from sending.services import send_alert_dismiss, study_send
from vetclinic.audit.services import Actor

POLL_SECONDS = 2


def _card(
    request: HttpRequest, study: Study, *, errors: dict | None = None, status: int = 200
) -> HttpResponse:
    sends = list(Send.objects.filter(study=study).select_related("destination", "series")[:10])
    context = {
        "study": study,
        "sends": sends,
        "alerts": [send for send in sends if send.alert],
        "running": any(send.state not in Send.FINISHED for send in sends),
        "destinations": Destination.objects.filter(active=True),
        "series": Series.objects.filter(study=study).order_by("series_number", "pk"),
        "errors": errors or {},
        "poll": POLL_SECONDS,
    }
    return render(request, "sending/_study_sends.html", context, status=status)


@login_required
@permission_required("sending.view_send", raise_exception=True)
@require_GET
def study_sends(request: HttpRequest, pk: int) -> HttpResponse:
    return _card(request, get_object_or_404(Study, pk=pk))


@login_required
@permission_required("sending.add_send", raise_exception=True)
@require_POST
def study_send_form(request: HttpRequest, pk: int) -> HttpResponse:
    study = get_object_or_404(Study, pk=pk)
    errors: dict[str, str] = {}
    destination = Destination.objects.filter(pk=request.POST.get("destination") or 0, active=True).first()
    if destination is None:
        errors["destination"] = "Choose a destination."
    series = None
    if request.POST.get("series"):
        series = Series.objects.filter(pk=request.POST["series"] if request.POST["series"].isdigit() else 0,
                                       study=study).first()  # fmt: skip
        if series is None:
            errors["series"] = "This series is not in the study."
    if not errors and destination is not None:
        try:
            study_send(
                study=study, destination=destination, series=series, actor=Actor.for_user(request.user)
            )
        except ValidationError as refused:
            errors = {field: " ".join(messages) for field, messages in refused.message_dict.items()}
    return _card(request, study, errors=errors, status=400 if errors else 200)


@login_required
@permission_required("sending.add_send", raise_exception=True)
@require_POST
def send_alert_dismissed(request: HttpRequest, pk: int) -> HttpResponse:
    send = get_object_or_404(Send, pk=pk)
    send_alert_dismiss(send=send, actor=Actor.for_user(request.user))
    return _card(request, send.study)

"""The clinic's side, on the study page: make a share link or a consult request (the raw link
and its QR code shown once), revoke a link, acknowledge consult reports."""

import io
from datetime import timedelta
from decimal import Decimal, InvalidOperation

import qrcode
import qrcode.image.svg
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.utils.timezone import now
from django.views.decorators.http import require_POST

from imaging.models import Study
from sending.models import Destination
from sharing import services
from sharing.models import ShareLink
from vetclinic.audit.services import Actor


def qr_svg(url: str) -> str:
    """The link as a QR code, an inline SVG (a path, no raster) that prints sharp on paper."""
    image = qrcode.make(url, image_factory=qrcode.image.svg.SvgPathImage, box_size=10, border=2)
    out = io.BytesIO()
    image.save(out)
    svg = out.getvalue().decode()
    return svg[svg.index("<svg") :]


def _form_values(request: HttpRequest, study: Study) -> dict:
    errors: dict[str, str] = {}
    days_text = request.POST.get("days", "").strip() or "7"
    try:
        days = int(days_text)
        if not 1 <= days <= 365:
            raise ValueError
    except ValueError:
        errors["days"] = "A number of days from 1 to 365."
        days = 7
    prior_ids = [int(v) for v in request.POST.getlist("priors") if v.isdigit()]
    priors = list(Study.objects.filter(pk__in=prior_ids))
    if errors:
        raise ValidationError(errors)
    return {"expires_at": now() + timedelta(days=days), "priors": priors,
            "access_code": request.POST.get("access_code", "").strip()}  # fmt: skip


def _created(request: HttpRequest, study: Study, link: ShareLink, raw: str) -> HttpResponse:
    url = request.build_absolute_uri(reverse("share_open", args=[raw]))
    return render(request, "sharing/created.html", {
        "study": study, "link": link, "url": url, "qr": mark_safe(qr_svg(url)),  # noqa: S308 (our own SVG)
    })  # fmt: skip


def _back_with_errors(request: HttpRequest, study: Study, error: ValidationError) -> HttpResponseBase:
    for field, problems in error.message_dict.items():
        messages.error(request, f"{field}: {' '.join(problems)}")
    return redirect(reverse("study_detail", args=[study.pk]) + "#sharing")


@login_required
@permission_required("imaging.change_study", raise_exception=True)
@require_POST
def link_create(request: HttpRequest, pk: int) -> HttpResponseBase:
    study = get_object_or_404(Study, pk=pk)
    try:
        values = _form_values(request, study)
        link, raw = services.link_create(
            actor=Actor.for_user(request.user), study=study, kind=request.POST.get("kind", ""),
            note=request.POST.get("note", ""), **values,
        )  # fmt: skip
    except ValidationError as error:
        return _back_with_errors(request, study, error)
    return _created(request, study, link, raw)


@login_required
@permission_required("imaging.change_study", raise_exception=True)
@require_POST
def consult_create(request: HttpRequest, pk: int) -> HttpResponseBase:
    study = get_object_or_404(Study, pk=pk)
    try:
        values = _form_values(request, study)
        weight_text = request.POST.get("weight_kg", "").strip()
        try:
            weight = Decimal(weight_text) if weight_text else None
        except InvalidOperation:
            raise ValidationError({"weight_kg": "A weight in kilograms, e.g. 12.5."}) from None
        sent_to_id = request.POST.get("sent_to", "").strip()
        sent_to = (
            Destination.objects.filter(pk=int(sent_to_id), active=True).first()
            if sent_to_id.isdigit()
            else None
        )
        if sent_to_id and sent_to is None:
            raise ValidationError({"sent_to": "No such active destination."})
        consult, raw = services.consult_create(
            actor=Actor.for_user(request.user), study=study, destination=request.POST.get("destination", ""),
            sent_to=sent_to,
            clinical_question=request.POST.get("clinical_question", ""), history=request.POST.get("history", ""),
            weight_kg=weight, **values,
        )  # fmt: skip
    except ValidationError as error:
        return _back_with_errors(request, study, error)
    assert consult.link is not None
    return _created(request, study, consult.link, raw)


@login_required
@permission_required("imaging.change_study", raise_exception=True)
@require_POST
def link_revoke(request: HttpRequest, pk: int) -> HttpResponseBase:
    link = get_object_or_404(ShareLink, pk=pk)
    if services.link_revoke(actor=Actor.for_user(request.user), link=link):
        messages.success(request, f"{link} revoked: it no longer opens.")
    return redirect(reverse("study_detail", args=[link.study_id]) + "#sharing")


@login_required
@permission_required("imaging.view_study", raise_exception=True)
@require_POST
def reports_seen(request: HttpRequest, pk: int) -> HttpResponseBase:
    study = get_object_or_404(Study, pk=pk)
    services.reports_acknowledge(actor=Actor.for_user(request.user), study=study)
    return redirect(reverse("study_detail", args=[study.pk]) + "#sharing")

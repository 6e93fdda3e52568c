"""The link's own pages, /s/<token>/..., for whoever holds it (no login): the token is all the
address carries (no patient data), and only its hash is looked up. Every page reads the link
again: revoked or expired, it is refused at once (410). Every page view counts against the
link+address rate limit (429); an access code, when the link has one, is asked first and
remembered in the visitor's session for that link only."""

import tempfile
import zipfile

from axes.helpers import get_client_ip_address
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from imaging.archive.objects import object_chunks
from imaging.archive.rendered import Picture, picture_render
from imaging.archive.rendering import JPEG, CannotRender, Rendering
from imaging.models import Instance, Study
from imaging.studies import selectors
from sharing import services
from sharing.grants import grant_set
from sharing.models import ShareLink

CODE_KEY = "share_code_ok"


def _address(request: HttpRequest) -> str:
    return get_client_ip_address(request) or "unknown"


def _private(response: HttpResponseBase) -> HttpResponseBase:
    # The token is in the address: no other site learns it from a Referer ("same-origin": with
    # "no-referrer" the browser sends Origin: null on the opinion's POST, which CSRF refuses),
    # and no cache keeps it.
    response["Referrer-Policy"] = "same-origin"
    response["Cache-Control"] = "private, no-store"
    response["X-Robots-Tag"] = "noindex"
    return response


def _refused(
    request: HttpRequest, status: int, message: str, retry_after: int | None = None
) -> HttpResponseBase:
    response = render(request, "sharing/refused.html", {"message": message}, status=status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return _private(response)


def _checked(request: HttpRequest, token: str) -> tuple[ShareLink | None, HttpResponseBase | None]:
    """The link if this request may use it, else the refusal to answer with."""
    link = services.link_find(token)
    if link is None:
        return None, _refused(request, 404, "This link is not valid.")
    state = link.state()
    if state != "active":
        return None, _refused(request, 410, f"This link has been {state}. Ask the clinic for a new one.")
    limited = services.link_throttle(link, _address(request))
    if limited is not None:
        return None, _refused(
            request, 429, "Too many requests with this link; wait a minute.", limited.retry_after
        )
    return link, None


def _code_passed(request: HttpRequest, link: ShareLink) -> bool:
    return not link.access_code_hash or link.pk in request.session.get(CODE_KEY, [])


@require_http_methods(["GET", "POST"])
def share_open(request: HttpRequest, token: str) -> HttpResponseBase:
    link, refusal = _checked(request, token)
    if link is None:
        assert refusal is not None
        return refusal
    if request.method == "POST" or not _code_passed(request, link):
        return _code_page(request, link, token)
    if link.kind == ShareLink.Kind.OWNER:
        services.link_open_record(link=link, address=_address(request))
        return _private(_owner_page(request, link, token))
    return _private(_specialist_page(request, link, token))


def _code_page(request: HttpRequest, link: ShareLink, token: str) -> HttpResponseBase:
    address = _address(request)
    locked = services.code_locked(link, address)
    if locked is not None:
        return _refused(
            request, 429, "Too many wrong codes from this address; try again later.", locked.retry_after
        )
    if request.method == "POST":
        if services.access_code_check(link, request.POST.get("access_code", "")):
            request.session[CODE_KEY] = [*request.session.get(CODE_KEY, []), link.pk]
            return redirect(reverse("share_open", args=[token]))
        services.code_failed(link, address)
        locked = services.code_locked(link, address)
        if locked is not None:
            return _refused(
                request, 429, "Too many wrong codes from this address; try again later.", locked.retry_after
            )
        return _private(render(request, "sharing/code.html", {"token": token, "wrong": True}, status=403))
    return _private(render(request, "sharing/code.html", {"token": token}))


def _specialist_page(request: HttpRequest, link: ShareLink, token: str) -> HttpResponse:
    """The read-only viewer of the link's study, or of a chosen prior (?prior=<its number>)."""
    studies = services.link_studies(link)
    index = request.GET.get("prior", "0")
    if not index.isdigit() or int(index) >= len(studies):
        raise Http404("No such study on this link.")
    study = studies[int(index)]
    if index == "0":
        services.link_open_record(link=link, address=_address(request))
    grant_set(request, link)
    shown = list(selectors.study_series(study=study).filter(image_count__gt=0))
    series_strip = [
        {"uid": s.series_instance_uid, "number": s.series_number, "description": s.description,
         "modality": s.modality, "images": s.image_count}
        for s in shown
    ]  # fmt: skip
    context = {
        "link": link, "token": token, "study": study, "series": shown[0] if shown else None,
        "series_strip": series_strip, "dicomweb_root": reverse("dicomweb:studies").removesuffix("studies"),
        "studies": list(enumerate(studies)), "current": int(index),
    }  # fmt: skip
    return render(request, "sharing/specialist.html", context)


def _key_pictures(link: ShareLink) -> list[Picture]:
    """The owner's images: the annotation set's key images, else each series' first image."""
    from imaging.annotations.services import annotations_current

    current = annotations_current(study=link.study)
    pictures = []
    instances = Instance.objects.filter(series__study=link.study, rows__isnull=False)
    for item in current.key_images if current else []:
        found = instances.filter(sop_instance_uid=item.get("sopInstanceUid")).first()
        if found is not None:
            frame = item.get("frame") if isinstance(item.get("frame"), int) else 1
            pictures.append(
                Picture(
                    found.storage_key, found.sop_instance_uid, (min(max(frame, 1), found.number_of_frames),)
                )
            )
    if not pictures:
        for series in link.study.series.order_by("series_number", "id"):
            first = instances.filter(series=series).order_by("instance_number", "id").first()
            if first is not None:
                pictures.append(Picture(first.storage_key, first.sop_instance_uid, (1,)))
    return pictures


def _owner_page(request: HttpRequest, link: ShareLink, token: str) -> HttpResponse:
    count = len(_key_pictures(link))
    study: Study = link.study
    return render(request, "sharing/owner.html", {
        "link": link, "token": token, "study": study, "images": range(1, count + 1),
        "animal": study.patient.name if study.patient else "",
    })  # fmt: skip


def _link_for_part(request: HttpRequest, token: str) -> tuple[ShareLink | None, HttpResponseBase | None]:
    link, refusal = _checked(request, token)
    if link is not None and not _code_passed(request, link):
        return None, _refused(request, 403, "Enter the access code on the link's first page.")
    return link, refusal


def share_image(request: HttpRequest, token: str, number: int) -> HttpResponseBase:
    """An owner's key image as JPEG (?download=1: as a file)."""
    link, refusal = _link_for_part(request, token)
    if link is None:
        assert refusal is not None
        return refusal
    pictures = _key_pictures(link)
    if not 1 <= number <= len(pictures):
        raise Http404("No such image.")
    try:
        body = picture_render(pictures[number - 1], Rendering(), JPEG)
    except CannotRender:
        raise Http404("This image cannot be drawn.") from None
    response = HttpResponse(body, content_type=JPEG)
    if request.GET.get("download"):
        response["Content-Disposition"] = f'attachment; filename="image-{number}.jpg"'
    return _private(response)


def share_download(request: HttpRequest, token: str) -> HttpResponseBase:
    """A specialist's DICOM download: the study's files as stored, in a ZIP (series/instance)."""
    link, refusal = _link_for_part(request, token)
    if link is None:
        assert refusal is not None
        return refusal
    if link.kind != ShareLink.Kind.SPECIALIST:
        raise Http404("No download on this link.")
    spooled = tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024)
    instances = Instance.objects.filter(series__study=link.study).select_related("series")
    with zipfile.ZipFile(spooled, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for number, instance in enumerate(
            instances.order_by("series__series_number", "series_id", "instance_number", "id")
        ):
            name = f"S{instance.series.series_number or 0:04d}/I{number + 1:05d}.dcm"
            with archive.open(name, "w", force_zip64=True) as member:
                for chunk in object_chunks(instance.storage_key):
                    member.write(chunk)
    spooled.seek(0)
    services.download_record(link=link, address=_address(request), count=instances.count())
    response = FileResponse(spooled, as_attachment=True, filename="study.zip", content_type="application/zip")
    return _private(response)


@require_POST
def share_opinion(request: HttpRequest, token: str) -> HttpResponseBase:
    link, refusal = _link_for_part(request, token)
    if link is None:
        assert refusal is not None
        return refusal
    try:
        services.consult_report_file(
            link=link, author_name=request.POST.get("author_name", ""), text=request.POST.get("text", "")
        )
    except ValidationError as error:
        return _private(render(request, "sharing/opinion_done.html",
                               {"token": token, "errors": error.message_dict}, status=400))  # fmt: skip
    return _private(render(request, "sharing/opinion_done.html", {"token": token}))

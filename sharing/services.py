"""Share links and consults: making, opening, revoking, and the opinion filed back. The staff
pages, the REST API and the link's own pages all call these."""

import hashlib
import importlib
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils.timezone import now

from imaging.annotations.services import annotations_current
from imaging.models import Study
from sending.models import Destination
from sending.services import study_send
from sharing.models import ConsultReport, ConsultRequest, ShareLink
from vetclinic.audit.services import Actor, audit_read, audit_record

log = logging.getLogger(__name__)
OPENED = "share-open"


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def link_find(raw: str) -> ShareLink | None:
    """The link a token names, whatever its state; None for a token that names none."""
    if not raw or len(raw) > 100:
        return None
    return ShareLink.objects.select_related("study").filter(token_hash=token_hash(raw)).first()


def _who(actor: Actor) -> tuple[User | None, str]:
    user = actor.user if isinstance(actor.user, User) and actor.user.pk else None
    return user, (user.get_full_name() or user.get_username()) if user else actor.name


def _priors_check(study: Study, priors: Iterable[Study]) -> list[Study]:
    """Only the same animal's other studies (its record and those merged into it)."""
    chosen = list(priors)
    if not chosen:
        return []
    # (By name: priors.py is not among the type-checked files, and an import would check it.)
    animal_records = importlib.import_module("imaging.studies.priors").animal_records
    same: set[int] = animal_records(study.patient) if study.patient is not None else set()
    if any(prior.pk == study.pk or prior.patient_id not in same for prior in chosen):
        raise ValidationError({"priors": "Only this animal's other studies can be shared as priors."})
    return chosen


def _expiry(expires_at: datetime | None) -> datetime:
    if expires_at is None:
        return now() + timedelta(days=int(settings.SHARE_LINK_DAYS))
    # A date in the past is allowed: the link is then simply expired (and the tests need one).
    return expires_at


def link_create(
    *,
    actor: Actor,
    study: Study,
    kind: str,
    expires_at: datetime | None = None,
    access_code: str = "",
    priors: Iterable[Study] = (),
    note: str = "",
) -> tuple[ShareLink, str]:
    """A new link and its raw token (shown once: only its hash is kept)."""
    if kind not in ShareLink.Kind.values:
        raise ValidationError({"kind": f"One of {', '.join(ShareLink.Kind.values)}."})
    if access_code and not 4 <= len(access_code) <= 64:
        raise ValidationError({"access_code": "From 4 to 64 characters."})
    chosen = _priors_check(study, priors) if kind == ShareLink.Kind.SPECIALIST else []
    raw = secrets.token_urlsafe(32)  # 256 bits: unguessable (PS3.18 does not define sharing)
    user, name = _who(actor)
    with transaction.atomic():
        link = ShareLink.objects.create(
            study=study, kind=kind, token_hash=token_hash(raw), expires_at=_expiry(expires_at),
            access_code_hash=make_password(access_code) if access_code else "",
            created_by=user, created_by_name=name, note=note.strip(),
        )  # fmt: skip
        link.priors.set(chosen)
        audit_record(
            actor=actor, instance=study, action="share",
            changes={"link": [None, link.pk], "kind": [None, kind], "expires": [None, link.expires_at.isoformat()]},
        )  # fmt: skip
    return link, raw


def link_revoke(*, actor: Actor, link: ShareLink) -> bool:
    """Revoked at once: every later request with the link, its pages and its DICOMweb grant alike,
    reads revoked_at (sharing/grants.py). False when it already was."""
    if link.revoked_at is not None:
        return False
    link.revoked_at = now()
    link.save(update_fields=["revoked_at"])
    audit_record(actor=actor, instance=link.study, action="share-revoke", changes={"link": [link.pk, None]})
    return True


def link_studies(link: ShareLink) -> list[Study]:
    """What the link may read: its study, and for a specialist the chosen priors."""
    return [link.study, *link.priors.all()] if link.kind == ShareLink.Kind.SPECIALIST else [link.study]


def access_code_check(link: ShareLink, code: str) -> bool:
    return bool(link.access_code_hash) and check_password(code, link.access_code_hash)


# Rate limits -------------------------------------------------------------------------------
# django-axes guards the login; a link is not a login, so its own small counters, per link and
# address, in the shared cache (Redis): a page-view bucket, and the wrong access codes.


@dataclass(frozen=True)
class Limited:
    retry_after: int


def _bucket(key: str, per_minute: int) -> Limited | None:
    """A token bucket: ``per_minute`` requests of burst, refilled evenly."""
    moment = now().timestamp()
    tokens, last = cache.get(key) or (float(per_minute), moment)
    tokens = min(float(per_minute), tokens + max(0.0, moment - last) * per_minute / 60)
    if tokens < 1:
        cache.set(key, (tokens, moment), 120)
        return Limited(max(1, int((1 - tokens) * 60 / per_minute) + 1))
    cache.set(key, (tokens - 1, moment), 120)
    return None


def link_throttle(link: ShareLink, address: str) -> Limited | None:
    return _bucket(f"share-rate-{link.pk}-{address}", int(settings.SHARE_RATE_LIMIT))


def _failures_key(link: ShareLink, address: str) -> str:
    return f"share-code-{link.pk}-{address}"


def code_locked(link: ShareLink, address: str) -> Limited | None:
    failures = cache.get(_failures_key(link, address)) or 0
    if failures >= int(settings.SHARE_CODE_ATTEMPTS):
        return Limited(int(settings.SHARE_CODE_LOCKOUT_MINUTES) * 60)
    return None


def code_failed(link: ShareLink, address: str) -> None:
    key = _failures_key(link, address)
    cache.add(key, 0, int(settings.SHARE_CODE_LOCKOUT_MINUTES) * 60)
    cache.incr(key)


# Opening and the opinion ---------------------------------------------------------------------


def link_open_record(*, link: ShareLink, address: str | None) -> None:
    """Each opening of the link's page: counted, in the audit log (time, address) and told to
    the webhooks (``share.opened``); a consult's link opened for the first time is "received"."""
    moment = now()
    ShareLink.objects.filter(pk=link.pk).update(opened_count=F("opened_count") + 1, last_opened_at=moment)
    link.opened_count += 1
    link.last_opened_at = moment
    audit_read(
        actor=Actor.system(f"share link #{link.pk}"), instance=link.study, action=OPENED,
        changes={"link": [None, link.pk], "kind": [None, link.kind], "address": [None, address or "unknown"]},
    )  # fmt: skip
    ConsultRequest.objects.filter(link=link, status=ConsultRequest.Status.SENT).update(
        status=ConsultRequest.Status.RECEIVED
    )
    _publish("share.opened", {"link": link_data(link), "address": address or None})


def download_record(*, link: ShareLink, address: str | None, count: int) -> None:
    audit_read(
        actor=Actor.system(f"share link #{link.pk}"), instance=link.study, action="share-download",
        changes={"link": [None, link.pk], "instances": [None, count], "address": [None, address or "unknown"]},
    )  # fmt: skip


def consult_report_file(
    *,
    author_name: str,
    text: str,
    link: ShareLink | None = None,
    consult: ConsultRequest | None = None,
    source: str = ConsultReport.Source.LINK,
    source_id: str = "",
    status: str = ConsultReport.Status.FINAL,
    actor: Actor | None = None,
    amends: ConsultReport | None = None,
) -> ConsultReport:
    """An opinion filed on the study as a consult report: the one way in for all three answers,
    the specialist's link (``link``: its study and its consult), an HL7 ORU^R01 and a DICOM SR
    (``consult``, sharing/answers.py). Checked first (ValidationError by field, nothing filed);
    then filed, the consult *reported* (a preliminary answer leaves it *received*), in the audit
    log, the study page's badge counts it, and the webhooks hear ``consult.reported``. A later
    answer is a new report that names the one it amends, which stays: ``amends`` (the SR a
    corrected DICOM SR names as its predecessor), else for a corrected answer (HL7 OBX-11 C) the
    consult's latest. ``source_id`` (a message's control id, an SR's SOP Instance UID) is filed
    once."""
    errors = {}
    if not author_name.strip():
        errors["author_name"] = "Your name."
    if not text.strip():
        errors["text"] = "Your opinion."
    if len(author_name) > 200:
        errors["author_name"] = "At most 200 characters."
    if len(text) > 50_000:
        errors["text"] = "At most 50,000 characters."
    if link is not None and link.kind != ShareLink.Kind.SPECIALIST:
        errors["link"] = "Only a specialist's link takes an opinion."
    if link is None and consult is None:
        errors["consult"] = "No consult and no link: nowhere to file the opinion."
    if source not in ConsultReport.Source.values:
        errors["source"] = f"One of {', '.join(ConsultReport.Source.values)}."
    if status not in ConsultReport.Status.values:
        errors["status"] = f"One of {', '.join(ConsultReport.Status.values)}."
    if amends is not None and (consult is None or amends.consult_id != consult.pk):
        errors["amends"] = "The report amended is another consult's."
    if source_id and ConsultReport.objects.filter(source=source, source_id=source_id[:255]).exists():
        errors["source_id"] = f"{source_id[:80]} was filed already."
    if errors:
        raise ValidationError(errors)
    if consult is None and link is not None:
        consult = ConsultRequest.objects.filter(link=link).first()
    study = link.study if link is not None else consult.study  # type: ignore[union-attr]
    actor = actor or Actor.system(f"share link #{link.pk}" if link is not None else "consult answer")
    with transaction.atomic():
        if amends is None and status == ConsultReport.Status.CORRECTED and consult is not None:
            amends = consult.reports.order_by("-created_at", "-id").first()
        report = ConsultReport.objects.create(
            study=study, link=link or (consult.link if consult else None), consult=consult,
            author_name=author_name.strip(), text=text.strip(), source=source, source_id=source_id[:255],
            status=status, amends=amends,
        )  # fmt: skip
        if consult is not None and status != ConsultReport.Status.PRELIMINARY:
            consult.status = ConsultRequest.Status.REPORTED
            consult.reported_at = report.created_at
            consult.save(update_fields=["status", "reported_at"])
        elif consult is not None and consult.status == ConsultRequest.Status.SENT:
            consult.status = ConsultRequest.Status.RECEIVED  # preliminary: being read, not done
            consult.save(update_fields=["status"])
        audit_record(
            actor=actor, instance=study, action="consult-report",
            changes={"author": [None, report.author_name], "consult": [None, consult.pk if consult else None],
                     "source": [None, source], "status": [None, status]},
        )  # fmt: skip
    _publish("consult.reported", {"consult": consult_data(consult) if consult else None,
                                  "report": report_data(report)})  # fmt: skip
    return report


def consult_for_answer(
    *, placer: str = "", accession: str = "", corrected: bool = False
) -> ConsultRequest | None:
    """The consult an answer names: by its placer number (``CONSULT-<pk>``, what the request
    told the service to quote); else, when the placer number is not one of ours (the service's
    or the PMS's own), by the study's accession number: the latest consult not yet reported (a
    corrected answer: the latest, reported or not). None when nothing fits."""
    placer = placer.strip().upper()
    if placer.startswith(ConsultRequest.PLACER_PREFIX):
        number = placer.removeprefix(ConsultRequest.PLACER_PREFIX)
        if not number.isdigit():
            return None
        return ConsultRequest.objects.select_related("study", "link").filter(pk=int(number)).first()
    if not accession.strip():
        return None
    consults = ConsultRequest.objects.select_related("study", "link").filter(
        study__accession_number=accession.strip()
    )
    if not corrected:
        consults = consults.exclude(status=ConsultRequest.Status.REPORTED)
    return consults.order_by("-created_at", "-id").first()


def consult_create(
    *,
    actor: Actor,
    study: Study,
    destination: str = "",
    clinical_question: str,
    history: str = "",
    weight_kg: Decimal | None = None,
    priors: Iterable[Study] = (),
    expires_at: datetime | None = None,
    access_code: str = "",
    sent_to: Destination | None = None,
) -> tuple[ConsultRequest, str]:
    """A consult request and the specialist's link it is answered through (its raw token).
    ``sent_to``: a registered destination (a teleradiology service): the study and the chosen
    priors are sent there too (sending.services.study_send), and its answer may come back as an
    HL7 ORU^R01 or a DICOM SR quoting the consult's placer number (sharing/answers.py)."""
    errors = {}
    if sent_to is not None and not destination.strip():
        destination = sent_to.name
    if not destination.strip():
        errors["destination"] = "Who is asked: a teleradiology service, or a specialist's name or email."
    if not clinical_question.strip():
        errors["clinical_question"] = "What the specialist is asked."
    if weight_kg is not None and not Decimal("0") < weight_kg < Decimal("10000"):
        errors["weight_kg"] = "A weight in kilograms, above 0."
    if errors:
        raise ValidationError(errors)
    chosen = _priors_check(study, priors)
    current = annotations_current(study=study)
    key_images = [
        {k: item.get(k) for k in ("seriesUid", "sopInstanceUid", "frame")}
        for item in (current.key_images if current else [])
    ]
    user, name = _who(actor)
    with transaction.atomic():
        link, raw = link_create(
            actor=actor, study=study, kind=ShareLink.Kind.SPECIALIST, expires_at=expires_at,
            access_code=access_code, priors=chosen,
        )  # fmt: skip
        consult = ConsultRequest.objects.create(
            study=study, requested_by=user, requested_by_name=name, destination=destination.strip()[:200],
            clinical_question=clinical_question.strip(), history=history.strip(), weight_kg=weight_kg,
            key_images=key_images, link=link, sent_to=sent_to,
        )  # fmt: skip
        consult.priors.set(chosen)
        if sent_to is not None:  # refused (inactive, nothing to send): no consult either
            consult.sends.set(
                [study_send(study=each, destination=sent_to, actor=actor) for each in [study, *chosen]]
            )
        audit_record(actor=actor, instance=study, action="consult-request",
                     changes={"consult": [None, consult.pk], "destination": [None, consult.destination]})  # fmt: skip
    _publish("consult.requested", {"consult": consult_data(consult)})
    return consult, raw


def reports_acknowledge(*, actor: Actor, study: Study) -> int:
    count = ConsultReport.objects.filter(study=study, seen_at__isnull=True).update(seen_at=now())
    if count:
        audit_record(actor=actor, instance=study, action="consult-seen", changes={"reports": [None, count]})
    return count


# Webhooks ------------------------------------------------------------------------------------


def link_data(link: ShareLink) -> dict[str, Any]:
    return {"id": link.pk, "study": link.study_id, "kind": link.kind, "state": link.state(),
            "expires_at": link.expires_at.isoformat(), "opened_count": link.opened_count}  # fmt: skip


def consult_data(consult: ConsultRequest) -> dict[str, Any]:
    return {"id": consult.pk, "study": consult.study_id, "status": consult.status,
            "destination": consult.destination, "link": consult.link_id,
            "sent_to": consult.sent_to.name if consult.sent_to else None,
            "placer_number": consult.placer_number}  # fmt: skip


def report_data(report: ConsultReport) -> dict[str, Any]:
    return {"id": report.pk, "study": report.study_id, "author_name": report.author_name,
            "created": report.created_at.isoformat(), "source": report.source, "status": report.status,
            "amends": report.amends_id}  # fmt: skip


def _publish(event: str, data: dict[str, Any]) -> None:
    """Told after the commit; a failure to queue loses only the notice, never the change."""
    from integrations.webhooks.services import event_publish

    def publish() -> None:
        try:
            event_publish(event=event, data=data)
        except Exception:
            log.exception("could not publish %s", event)

    transaction.on_commit(publish)

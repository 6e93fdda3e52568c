"""Who opened which study, when, from where: every opening of the study page and of the viewer
is an audit entry (action "open"), as a clinic's record of who looked at an animal's images
must be kept (the same log that holds every change: vetclinic/audit/)."""

from django.contrib.contenttypes.models import ContentType
from django.db.models import QuerySet

from imaging.models import Study
from vetclinic.audit.models import AuditEntry
from vetclinic.audit.selectors import audit_history
from vetclinic.audit.services import Actor, audit_read

OPEN = "open"


def study_open_record(*, actor: Actor, study: Study, page: str, address: str | None) -> None:
    """One entry per opening. A read: written without waiting for its WAL flush (audit_read),
    since it is on the way of every study the vets open."""
    audit_read(
        actor=actor, instance=study, action=OPEN,
        changes={"page": [None, page], "address": [None, address or "unknown"]},
    )  # fmt: skip


def study_openings(*, study: Study, limit: int = 10) -> QuerySet[AuditEntry]:
    """The latest openings of the study, newest first (the study page's "Opened by")."""
    return audit_history(instance=study, actions=[OPEN], limit=limit)


def studies_opened_by(*, user, study_ids: list[int]) -> set[int]:
    """Which of these studies the user has opened (the reading list's "opened by you"): one read
    of the audit index (object type, object id) for a page's ids."""
    if not getattr(user, "pk", None) or not study_ids:
        return set()
    opened = AuditEntry.objects.filter(
        object_type=ContentType.objects.get_for_model(Study),
        object_id__in=[str(pk) for pk in study_ids],
        action=OPEN,
        user=user,
    ).values_list("object_id", flat=True)
    return {int(pk) for pk in opened.distinct()}

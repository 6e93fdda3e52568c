"""Sending studies: study_send (the UI, the REST API and routing call it), send_run (the task's
body, one attempt), routing_check (the periodic rule check).

Sending twice doubles nothing at a well-behaved receiver: every object goes with its own SOP
Instance UID, unchanged (decompressing changes the transfer syntax only), and a receiver keys its
store on that UID (PS3.4 B.4.1: a second C-STORE of an instance replaces or is ignored; STOW-RS
likewise, PS3.18 10.5).
"""

import logging
from datetime import datetime, timedelta

from celery import current_app
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.utils.timezone import now

from imaging.archive.retrieve import RetrievedInstance
from imaging.models import Instance, Series, Study
from sending.dicom_out import Unreachable, dicom_send
from sending.models import Destination, RoutingLog, RoutingRule, Send, SendResult
from sending.stow_out import stow_send
from vetclinic.audit.services import Actor, audit_record

log = logging.getLogger("sending")

SEND_TASK = "sending.tasks.send_task"
RETRY = "retry"
# Results are written, and the progress counts updated, this many instances at a time.
FLUSH_EVERY = 25


def send_attempts() -> int:
    return int(getattr(settings, "SEND_ATTEMPTS", 5))


def retry_delay(attempt: int) -> int:
    """Seconds before attempt ``attempt + 1``: doubling from SEND_RETRY_SECONDS, at most an hour."""
    return int(min(3600, int(getattr(settings, "SEND_RETRY_SECONDS", 30)) * 2 ** max(0, attempt - 1)))


def study_send(
    *, study: Study, destination: Destination, actor: Actor,
    series: Series | None = None, instances: list[str] | None = None,
) -> Send:  # fmt: skip
    """Record a send of the study (or one series of it, or some of its instances by SOP Instance
    UID) to ``destination`` and queue it. Raises ValidationError naming the field."""
    if not destination.active:
        raise ValidationError({"destination": "This destination is not active."})
    if series is not None and series.study_id != study.pk:
        raise ValidationError({"series": "This series is not in the study."})
    chosen = Instance.objects.filter(series__study=study)
    if series is not None:
        chosen = chosen.filter(series=series)
    uids = list(dict.fromkeys(instances or []))
    if uids:
        found = set(chosen.filter(sop_instance_uid__in=uids).values_list("sop_instance_uid", flat=True))
        missing = [uid for uid in uids if uid not in found]
        if missing:
            raise ValidationError({"instances": f"Not in the study: {', '.join(missing[:5])}"})
        total = len(uids)
    else:
        total = chosen.count()
    if not total:
        raise ValidationError({"series" if series else "study": "Nothing to send: no instances."})
    user = actor.user if actor.user is not None and actor.user.is_authenticated else None
    with transaction.atomic():
        send = Send.objects.create(
            study=study, destination=destination, series=series, sop_instance_uids=uids, total=total,
            requested_by=user, requested_by_name=(user.get_username() if user else actor.name)[:150],
        )  # fmt: skip
        audit_record(actor=actor, instance=study, action="send",
                     changes={"destination": [None, destination.name], "send": [None, send.pk],
                              "instances": [None, total]})  # fmt: skip
        transaction.on_commit(lambda: send_queue(send.pk))
    return send


def send_queue(send_id: int, countdown: int = 0) -> None:
    try:
        current_app.send_task(SEND_TASK, args=[send_id], countdown=countdown)
    except Exception:  # the send stays queued, shown so on the page; sends_sweep queues it again
        log.exception("could not queue send %s", send_id)


def send_instances(send: Send) -> list[RetrievedInstance]:
    """What the send names and has no answer for yet (a retry sends only those), in order."""
    rows = Instance.objects.filter(series__study_id=send.study_id)
    if send.series_id:
        rows = rows.filter(series_id=send.series_id)
    if send.sop_instance_uids:
        rows = rows.filter(sop_instance_uid__in=send.sop_instance_uids)
    answered = SendResult.objects.filter(send=send).values("sop_instance_uid")
    rows = rows.exclude(sop_instance_uid__in=answered).order_by(
        "series__series_number", "series_id", "instance_number", "id"
    )
    return [
        RetrievedInstance(send.study_id, *row)
        for row in rows.values_list("sop_class_uid", "sop_instance_uid", "transfer_syntax_uid", "storage_key")
    ]


class _Recorder:
    """Collects per-instance outcomes and writes them, with the progress counts, in batches."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.pending: list[SendResult] = []

    def __call__(self, item: RetrievedInstance, outcome: str, status: int | None, comment: str) -> None:
        self.pending.append(SendResult(send=self.send, sop_instance_uid=item.sop_instance_uid,
                                       outcome=outcome, status=status, comment=comment))  # fmt: skip
        if len(self.pending) >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        counts = {"success": 0, "warning": 0, "failure": 0}
        for result in self.pending:
            counts[result.outcome] += 1
        with transaction.atomic():
            SendResult.objects.bulk_create(self.pending, ignore_conflicts=True)
            Send.objects.filter(pk=self.send.pk).update(
                completed=F("completed") + counts["success"], warning=F("warning") + counts["warning"],
                failed=F("failed") + counts["failure"],
            )  # fmt: skip
        self.pending = []


def send_run(send_id: int) -> str:
    """One attempt at a send (the task's body): the state it ended in, or RETRY when the
    destination could not be reached and attempts remain (the task waits retry_delay)."""
    with transaction.atomic():
        send = (
            Send.objects.select_for_update(of=("self",))
            .select_related("destination__node")
            .filter(pk=send_id)
            .first()
        )
        if send is None or send.state in Send.FINISHED:
            return send.state if send else "gone"
        send.state, send.attempts = Send.State.SENDING, send.attempts + 1
        send.save(update_fields=["state", "attempts"])
    destination = send.destination
    recorder = _Recorder(send)
    error = ""
    try:
        instances = send_instances(send)
        if destination.kind == Destination.Kind.STOW:
            stow_send(destination.stow_url, destination.auth_header, instances, recorder)
        else:
            if destination.node is None:
                raise ValueError("the destination names no DICOM node")
            dicom_send(destination.node, destination.calling_ae_title, instances, recorder)
    except Unreachable as failure:
        error = str(failure)
    except Exception as failure:  # a bug or a bad setting: not worth retrying, shown to staff
        log.exception("send %s failed", send_id)
        error = f"{type(failure).__name__}: {failure}"
        send.attempts = send_attempts()
    finally:
        recorder.flush()
    send.refresh_from_db()
    if error and send.attempts < send_attempts():
        Send.objects.filter(pk=send.pk).update(state=Send.State.RETRYING, error=error[:500])
        log.warning("send %s: attempt %s failed, retrying: %s", send.pk, send.attempts, error)
        return RETRY
    if error:
        state = Send.State.FAILED
    else:
        state = Send.State.PARTIAL if send.failed else Send.State.DONE
    Send.objects.filter(pk=send.pk).update(state=state, error=error[:500], finished=now(),
                                           alert=state != Send.State.DONE)  # fmt: skip
    send.refresh_from_db()
    send_finished_publish(send)
    return state


def send_finished_publish(send: Send) -> None:
    """The webhook ``study.sent``: the send is over (sent, partly or not at all)."""
    from integrations.webhooks.services import event_publish

    data = {
        "send": send.pk, "study": send.study_id, "study_instance_uid": send.study.study_instance_uid,
        "destination": send.destination.name, "state": send.state, "total": send.total,
        "completed": send.completed, "warning": send.warning, "failed": send.failed, "error": send.error,
    }  # fmt: skip
    try:
        event_publish(event="study.sent", data=data)
    except Exception:  # the send is recorded either way; only the notice is lost
        log.exception("could not publish study.sent for send %s", send.pk)


def send_alert_dismiss(*, send: Send, actor: Actor) -> None:
    Send.objects.filter(pk=send.pk).update(alert=False)
    audit_record(actor=actor, instance=send.study, action="send_alert_dismissed",
                 changes={"send": [None, send.pk]})  # fmt: skip


def rule_studies(rule: RoutingRule, at: datetime):
    """The studies ``rule`` matches that are stable at ``at`` (no instance received for its
    stable_seconds), received since the rule was made, and not routed by it yet."""
    studies = (
        Study.objects.filter(received_at__gte=rule.created)
        .exclude(routings__rule=rule)
        .annotate(last=Max("series__instances__received_at"))
        .filter(last__lte=at - timedelta(seconds=rule.stable_seconds))
    )
    if rule.station_ae:
        studies = studies.filter(series__received_from=rule.station_ae)
    if rule.modality:
        studies = studies.filter(series__modality=rule.modality)
    if rule.procedure_id:
        studies = studies.filter(order__procedure_id=rule.procedure_id)
    if rule.species_id:
        studies = studies.filter(patient__species_id=rule.species_id)
    if rule.teleradiology_only:
        studies = studies.filter(order__teleradiology=True)
    return studies.distinct().order_by("pk")


def routing_check(at: datetime | None = None) -> list[Send]:
    """Send each stable study every active rule matches, once per rule: the RoutingLog row
    (unique per rule and study) is claimed in the transaction that records the send, so two
    checks at once, or one run twice, send it once."""
    at = at or now()
    sends = []
    actor = Actor.system("routing")
    for rule in RoutingRule.objects.filter(active=True, destination__active=True).select_related(
        "destination"
    ):
        for study in rule_studies(rule, at):
            try:
                with transaction.atomic():
                    entry = RoutingLog.objects.create(rule=rule, study=study)
                    send = study_send(study=study, destination=rule.destination, actor=actor)
                    entry.send = send
                    entry.save(update_fields=["send"])
            except IntegrityError:  # another check claimed it first
                continue
            except ValidationError as refused:
                log.warning("routing %s: study %s not sent: %s", rule, study.pk, refused)
                continue
            sends.append(send)
    return sends


def sends_sweep(older_than: int = 600) -> int:
    """Queue again sends still queued long after they were made (the broker was down)."""
    stale = Send.objects.filter(state=Send.State.QUEUED, created__lt=now() - timedelta(seconds=older_than))
    ids = list(stale.values_list("pk", flat=True)[:100])
    for send_id in ids:
        send_queue(send_id)
    return len(ids)

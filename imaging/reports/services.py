"""Reports: the vet drafts, signs (makes final) and amends the written report on a study.

Making a report final moves the study's order to reported and tells the PMS (HL7 ORU^R01,
the ``report.finalized`` webhook) through the order event REPORT_FINAL; an amendment tells it
again, as a correction. Keyword-only and atomic like the order services; errors are
ValidationErrors keyed by field, worded for the vet.
"""

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.timezone import now

from imaging.models import ImagingOrder, Report, Study
from imaging.orders import events
from imaging.orders.services import STATE, order_status_set
from vetclinic.audit.services import Actor, Changes, audit_record, changes_apply

Status = Report.Status
OrderStatus = ImagingOrder.Status
# Long enough for any radiology report; short enough that one fits an HL7 message easily.
TEXT_LIMIT = 20_000


def _clean(text: str) -> str:
    """Browsers send a textarea's line breaks as CRLF; the report keeps plain newlines."""
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def _locked(study: Study) -> Report | None:
    return Report.objects.select_for_update().filter(study=study).first()


def _text_check(findings: str, conclusion: str, *, final: bool) -> None:
    errors: dict[str, str] = {}
    for name, text in (("findings", findings), ("conclusion", conclusion)):
        if len(text) > TEXT_LIMIT:
            errors[name] = f"At most {TEXT_LIMIT:,} characters (this has {len(text):,})."
    if final and not (findings.strip() or conclusion.strip()):
        errors["findings"] = "Write the findings or the conclusion before signing the report."
    if errors:
        raise ValidationError(errors)


def _final_state_error(report: Report) -> ValidationError:
    return ValidationError(
        {"findings": ValidationError(
            f"The report was signed by {report.signed_by_name or 'someone'} on "
            f"{report.finalized_at:%Y-%m-%d %H:%M}; amend it instead.", code=STATE)}
    )  # fmt: skip


def _signer(actor: Actor, signer_name: str = "") -> tuple[User | None, str]:
    """The account and the name that sign: a PMS or teleradiology service (REST) names the vet
    who wrote the report; in the UI it is the vet logged in."""
    user = actor.user if isinstance(actor.user, User) and actor.user.pk else None
    name = signer_name.strip() or ((user.get_full_name() or user.get_username()) if user else actor.name)
    return user, name[:200]


@transaction.atomic
def report_save(*, actor: Actor, study: Study, findings: str, conclusion: str) -> Report:
    """Keep a draft: create the study's report or change its text. A final report is amended."""
    findings, conclusion = _clean(findings), _clean(conclusion)
    _text_check(findings, conclusion, final=False)
    report = _locked(study)
    if report is None:
        report = Report.objects.create(study=study, findings=findings, conclusion=conclusion)
        audit_record(actor=actor, instance=report, action="create", changes={"status": [None, Status.DRAFT]})
        return report
    if report.is_final:
        raise _final_state_error(report)
    changes = changes_apply(report, {"findings": findings, "conclusion": conclusion})
    if changes:
        report.updated = now()
        report.save()
        audit_record(actor=actor, instance=report, action="update", changes=_summary(changes))
    return report


@transaction.atomic
def report_finalize(
    *, actor: Actor, study: Study, findings: str, conclusion: str, signer_name: str = ""
) -> Report:
    """Sign the report with this text: it becomes final, the order reported, the PMS told."""
    findings, conclusion = _clean(findings), _clean(conclusion)
    _text_check(findings, conclusion, final=True)
    report = _locked(study) or Report(study=study)
    if report.is_final:
        raise _final_state_error(report)
    was = Status.DRAFT if report.pk else None  # signed straight away: no draft before
    report.signed_by, report.signed_by_name = _signer(actor, signer_name)
    report.findings, report.conclusion = findings, conclusion
    report.status, report.version = Status.FINAL, 1
    report.finalized_at = report.updated = now()
    report.save()
    audit_record(
        actor=actor, instance=report, action="finalize",
        changes={"status": [was, Status.FINAL], "signed_by": [None, report.signed_by_name]},
    )  # fmt: skip
    _order_reported(actor, report)
    return report


@transaction.atomic
def report_amend(
    *, actor: Actor, study: Study, findings: str, conclusion: str, reason: str, signer_name: str = ""
) -> Report:
    """Change a final report: signed again by whoever amends it, and sent again as a correction."""
    findings, conclusion = _clean(findings), _clean(conclusion)
    _text_check(findings, conclusion, final=True)
    reason = reason.strip()
    if not reason:
        raise ValidationError(
            {"reason": "Say why the signed report is changed; the PMS and the log keep it."}
        )
    report = _locked(study)
    if report is None or not report.is_final:
        raise ValidationError(
            {"findings": ValidationError("Only a signed report can be amended.", code=STATE)}
        )
    changes = changes_apply(report, {"findings": findings, "conclusion": conclusion})
    if not changes:
        raise ValidationError({"findings": "The text is the same as the signed report's; nothing to amend."})
    report.signed_by, report.signed_by_name = _signer(actor, signer_name)
    report.status, report.version = Status.AMENDED, report.version + 1
    report.finalized_at = report.updated = now()
    report.save()
    audit_record(
        actor=actor, instance=report, action="amend",
        changes={**_summary(changes), "version": [report.version - 1, report.version], "reason": [None, reason]},
    )  # fmt: skip
    _order_reported(actor, report)
    return report


def _summary(changes: Changes) -> Changes:
    """The log keeps how long the texts were, not the texts: the report itself is the record."""
    return {
        name: [f"{len(old or '')} characters", f"{len(new or '')} characters"]
        for name, (old, new) in changes.items()
    }


def _order_reported(actor: Actor, report: Report) -> None:
    """The order the study answers becomes reported (completed first, if the modality never
    said so), and its subscribers hear of the final report. A cancelled or discontinued order
    keeps its status: the report still goes out."""
    if report.study.order_id is None:
        return
    order = ImagingOrder.objects.select_for_update().get(pk=report.study.order_id)  # as it is now
    if order.status in (OrderStatus.SCHEDULED, OrderStatus.ARRIVED, OrderStatus.IN_PROGRESS):
        order = order_status_set(actor=actor, order=order, status=OrderStatus.COMPLETED, note="report signed")
    if order.status == OrderStatus.COMPLETED:
        order = order_status_set(actor=actor, order=order, status=OrderStatus.REPORTED)
    events.order_event_publish(
        order,
        events.REPORT_FINAL,
        report={"id": report.pk, "status": report.status, "version": report.version},
    )

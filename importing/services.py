"""Receiving an upload and linking its studies: the same durable receive and ingest as a
C-STORE (imaging/ingest/receive.py ``files_receive``: each file kept as sent, or refused and
nothing of it kept), then, once the ingest worker has indexed them, the studies linked where
the upload was dropped, as reconciliation links them (imaging/reconcile/services.py: the
stored headers rewritten to agree with the record, the originals kept as InstanceVersions).
The web page and the REST API both call these."""

import logging
from pathlib import Path

from celery import current_app
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.timezone import now

from imaging.ingest.index import Sender
from imaging.ingest.receive import ObjectRefused, files_receive
from imaging.models import ImagingOrder, Instance, Study
from imaging.reconcile.services import study_headers_rewrite_queue, study_link_manual
from importing import sources
from importing.models import Upload
from patients.models import Patient
from patients.selectors import patient_resolve
from vetclinic.audit.models import Channel
from vetclinic.audit.services import Actor, audit_record

log = logging.getLogger(__name__)

# What an instance imported here says it was received from, where a C-STORE's says its
# sender's AE title (16 characters at most, PS3.5 6.2 AE); who sent it is the Sender.
RECEIVED_FROM = "WEBUPLOAD"
LINK_TASK = "importing.tasks.upload_link_task"


def upload_receive(
    *, actor: Actor, sender: Sender, root: Path, bytes_received: int,
    patient: Patient | None = None, order: ImagingOrder | None = None,
) -> Upload:  # fmt: skip
    """Receive every file laid out under ``root`` (sources.file_lay); record the upload and
    queue the linking of its studies. ``order`` implies its patient."""
    if order is not None:
        patient = order.patient
    found, refused = sources.candidates(
        root, most_file=settings.IMPORT_MAX_FILE_BYTES, most_total=settings.IMPORT_MAX_BYTES
    )
    stored: list[dict[str, str]] = []
    # One indexing task a group of 50 files, queued once the group is durable, as a C-STORE
    # association's IngestBatch queues one per 50 objects.
    results = files_receive([c.path for c in found], calling_ae=RECEIVED_FROM, sender=sender)
    for candidate, result in zip(found, results, strict=True):
        if isinstance(result, ObjectRefused):
            refused.append(sources.Refused(candidate.name, result.detail))
            continue
        summary = result["summary"]
        assert summary is not None  # (the receive always sums up what it stored)
        stored.append({
            "name": candidate.name,
            "sop_instance_uid": summary["sop_instance_uid"],
            "study_instance_uid": summary["study_instance_uid"],
        })  # fmt: skip
    upload = Upload.objects.create(
        user=actor.user if actor.user is not None and actor.user.is_authenticated else None,
        sender=sender["name"], patient=patient, order=order, files_received=len(found) + len(refused),
        bytes_received=bytes_received, stored=stored, refused=[r._asdict() for r in refused],
        status=Upload.Status.LINKING if stored else Upload.Status.DONE,
        finished=None if stored else now(),
    )  # fmt: skip
    audit_record(
        actor=actor, instance=upload, action="upload",
        changes={"files": [None, f"{len(stored)} stored, {len(refused)} refused"],
                 "patient": [None, str(patient) if patient else None]},
    )  # fmt: skip
    log.info("upload %s from %s: %d stored, %d refused", upload.pk, sender["name"], len(stored), len(refused))
    if stored:
        _link_queue(upload.pk)
    return upload


def _link_queue(upload_id: int) -> None:
    try:
        # By name: tasks import services, never the reverse (STYLE.md).
        current_app.send_task(LINK_TASK, args=[upload_id], countdown=0.5)
    except Exception:  # the files are stored; the page shows the upload as still linking
        log.exception("could not queue the linking of upload %s", upload_id)


def _actor(upload: Upload) -> Actor:
    if upload.user is not None:
        return Actor.for_user(upload.user)
    return Actor(channel=Channel.API, name=upload.sender)


def upload_link(*, upload_id: int, final: bool = False) -> bool:
    """Link the upload's studies once every stored file is indexed (False: not yet; ``final``
    links what is indexed by now). Dropped on a patient or order: each study is linked to it
    as staff link one in reconciliation; one whose species disagrees stays in the queue, with
    the reason, for staff to confirm there. Dropped elsewhere: the ingest's matching stands
    (order, Patient ID) and what it could not place waits in reconciliation."""
    upload = Upload.objects.select_related("patient", "order", "user").get(pk=upload_id)
    if upload.status == Upload.Status.DONE:
        return True
    uids = {item["sop_instance_uid"] for item in upload.stored}
    indexed = Instance.objects.filter(sop_instance_uid__in=uids).count()
    if indexed < len(uids) and not final:
        return False
    actor = _actor(upload)
    results = []
    for study_uid in dict.fromkeys(item["study_instance_uid"] for item in upload.stored):
        study = Study.objects.filter(study_instance_uid=study_uid).first()
        if study is None:
            results.append({"study_instance_uid": study_uid, "study_id": None, "patient": None,
                            "linked": False, "problem": "Not indexed yet: the storage sweep will index it"})  # fmt: skip
            continue
        problem = ""
        if upload.patient is not None:
            problem = _study_link(actor, upload, study)
            study.refresh_from_db()
        results.append({
            "study_instance_uid": study_uid, "study_id": study.pk,
            "patient": str(study.patient) if study.patient else None,
            "linked": study.patient_id is not None and study.link != Study.Link.UNMATCHED,
            "problem": problem or study.flag,
        })  # fmt: skip
    upload.studies, upload.status, upload.finished = results, Upload.Status.DONE, now()
    upload.save(update_fields=["studies", "status", "finished"])
    return True


def _study_link(actor: Actor, upload: Upload, study: Study) -> str:
    """Link one study where the upload was dropped; '' or why it was not."""
    patient = patient_resolve(upload.patient) if upload.patient else None
    assert patient is not None
    with transaction.atomic():
        if study.patient_id != patient.pk or study.link == Study.Link.UNMATCHED or study.flag:
            try:
                study = study_link_manual(actor=actor, study=study, patient=patient)
            except ValidationError as error:
                return " ".join(error.messages)
        else:  # the ingest linked it there already: make the headers agree all the same
            study_headers_rewrite_queue(study.pk)
        if upload.order is not None and study.order_id != upload.order.pk:
            study.order = upload.order
            study.save(update_fields=["order"])
            audit_record(actor=actor, instance=study, action="link",
                         changes={"order": [None, upload.order.accession_number]})  # fmt: skip
    return ""

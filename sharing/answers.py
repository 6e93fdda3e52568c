"""A consult's answer arriving as a DICOM SR document, filed as the consult report.

The ingest (imaging/ingest/index.py) calls ``sr_answers_file`` after the commit that indexed
new text SR documents (Basic Text, Enhanced and Comprehensive SR, PS3.4 B.5); the HL7 ORU^R01
path is integrations/hl7/inbound_results.py; both file through sharing.services
.consult_report_file, as the specialist's link does.

An SR is a consult's answer when its study has a consult not yet reported and either
- it quotes the consult's placer number (``CONSULT-<pk>``) as Placer Order Number / Imaging
  Service Request (0040,2016) or Accession Number (0008,0050) in its Referenced Request Sequence
  (0040,A370, PS3.3 C.17.2.2), or as its own Accession Number; or
- it came from the consult's destination: the calling AE title that sent it (Instance
  .received_from) is the AE title of the registered node the study was sent to.

Not an answer: VetPACS's own SRs (imaging/annotations/sr.py): the TID 1500 Measurement Report
is a Comprehensive 3D SR and the key images a Key Object Selection Document, neither of the
classes here; a TID 1500 document in a Comprehensive SR (Content Template Sequence, PS3.3
C.18.8.1.2) is measurements, not an opinion, and is left alone too.

A corrected document amends what it names: when its Predecessor Documents Sequence (0040,A360,
PS3.3 C.17.2.3: the earlier versions whose content it takes in, with or without changes) names
an SR already filed as a report on the study, the new report is filed on that report's consult
(reported or not) and amends it, as an HL7 OBX-11 C does.

The text: the content tree flattened in document order, each CONTAINER's concept name a
heading and each TEXT item "name: text". The author: sr_author (the SR Document General
Module's author, verifier or attestor, else the observer context, else the sending AE title).
Completion Flag PARTIAL (PS3.3 C.17.2) is a preliminary report; a complete one that amends a
final or corrected report is a corrected report (one that completes a preliminary is final).
Idempotent: one report per SR SOP Instance UID (the report's source id), so indexing the object
again files nothing.
"""

import logging
from collections.abc import Iterable, Iterator

from pydicom import Dataset, dcmread

from imaging.ingest.index import TEXT_SR_CLASSES
from imaging.models import Instance
from sharing.models import ConsultReport, ConsultRequest
from vetclinic.audit.models import Channel
from vetclinic.audit.services import Actor

log = logging.getLogger(__name__)
MEASUREMENT_REPORT = "1500"  # PS3.16 TID 1500
PERSON_OBSERVER_NAME = ("121008", "DCM")


def _meaning(item: Dataset) -> str:
    names = item.get("ConceptNameCodeSequence") or []
    return str(names[0].get("CodeMeaning", "")) if names else ""


def _flatten(items: Iterable[Dataset], lines: list[str]) -> None:
    for item in items:
        kind = item.get("ValueType", "")
        if kind == "CONTAINER":
            if _meaning(item):
                lines.append(f"{_meaning(item)}")
        elif kind == "TEXT" and str(item.get("TextValue", "")).strip():
            name, text = _meaning(item), str(item.TextValue).strip()
            lines.append(f"{name}: {text}" if name else text)
        if "ContentSequence" in item:
            _flatten(item.ContentSequence, lines)


def sr_text(ds: Dataset) -> str:
    """The document's headings and TEXT items in order (its title left out: it is the report's)."""
    lines: list[str] = []
    _flatten(ds.get("ContentSequence") or [], lines)
    return "\n".join(lines).strip()


def _author_names(ds: Dataset) -> Iterator[object]:
    """The person names a document gives for who wrote or signed it, most telling first."""
    # SR Document General Module (PS3.3 C.17.2, Table C.17-2): the author, Author Observer
    # Sequence (0040,A078) > Person Name (0040,A123) (a device author has none) ...
    for author in ds.get("AuthorObserverSequence") or []:
        yield author.get("PersonName")
    # ... the one who verified it, Verifying Observer Sequence (0040,A073) > Verifying Observer
    # Name (0040,A075), present when Verification Flag (0040,A493) is VERIFIED ...
    for verifier in ds.get("VerifyingObserverSequence") or []:
        yield verifier.get("VerifyingObserverName")
    # ... the one who attested it, Participant Sequence (0040,A07A) > Person Name, Participation
    # Type (0040,A080) ATTEST (not ENT, who typed it, nor SOURCE, a device).
    for participant in ds.get("ParticipantSequence") or []:
        if str(participant.get("ParticipationType", "")).upper() == "ATTEST":
            yield participant.get("PersonName")
    # Else the content tree's observer context (PS3.16 TID 1002): Person Observer Name (DCM
    # 121008), a PNAME item at the root.
    for item in ds.get("ContentSequence") or []:
        code = (item.get("ConceptNameCodeSequence") or [Dataset()])[0]
        if (code.get("CodeValue"), code.get("CodingSchemeDesignator")) == PERSON_OBSERVER_NAME:
            yield item.get("PersonName")


def sr_author(ds: Dataset, fallback: str) -> str:
    """Who the report is from, as "Given Family": the first name _author_names finds, else
    ``fallback`` (the AE title that sent it)."""
    for name in _author_names(ds):
        if str(name or "").strip("^ "):
            return _person(name)
    return fallback


def _person(name: object) -> str:
    """A DICOM PN (Family^Given) as "Given Family"."""
    family, _, rest = str(name).partition("^")
    return " ".join(p for p in (rest.split("^")[0], family) if p) or str(name)


def _measurements(ds: Dataset) -> bool:
    return any(
        str(t.get("TemplateIdentifier", "")) == MEASUREMENT_REPORT
        for t in ds.get("ContentTemplateSequence") or []
    )


def _quoted(ds: Dataset) -> set[str]:
    """The request numbers the document quotes (upper case)."""
    numbers = {str(ds.get("AccessionNumber", ""))}
    for request in ds.get("ReferencedRequestSequence") or []:
        numbers |= {str(request.get("PlacerOrderNumberImagingServiceRequest", "")),
                    str(request.get("AccessionNumber", ""))}  # fmt: skip
    return {n.strip().upper() for n in numbers if n.strip()}


def _predecessors(ds: Dataset) -> set[str]:
    """The SOP Instance UIDs of the documents this one supersedes: Predecessor Documents
    Sequence (0040,A360, PS3.3 C.17.2.3), items of the Hierarchical SOP Instance Reference
    Macro (Table C.17-3): study > Referenced Series Sequence > Referenced SOP Sequence."""
    uids = set()
    for study in ds.get("PredecessorDocumentsSequence") or []:
        for series in study.get("ReferencedSeriesSequence") or []:
            for sop in series.get("ReferencedSOPSequence") or []:
                uid = str(sop.get("ReferencedSOPInstanceUID", "")).strip()
                if uid:
                    uids.add(uid)
    return uids


def _amended(ds: Dataset, study_id: int) -> ConsultReport | None:
    """The consult report (filed from an SR on this study) that this document supersedes; the
    latest filed, if it names several."""
    uids = _predecessors(ds)
    if not uids:
        return None
    return (
        ConsultReport.objects.filter(
            source=ConsultReport.Source.SR, source_id__in=uids, study_id=study_id, consult__isnull=False
        )
        .select_related("consult__study", "consult__link")
        .order_by("-created_at", "-id")
        .first()
    )


def _status(ds: Dataset, amends: ConsultReport | None) -> str:
    if str(ds.get("CompletionFlag", "")).upper() == "PARTIAL":  # PS3.3 C.17.2: still being written
        return ConsultReport.Status.PRELIMINARY
    if amends is not None and amends.status != ConsultReport.Status.PRELIMINARY:
        return ConsultReport.Status.CORRECTED
    return ConsultReport.Status.FINAL


def _consult_for(
    instance: Instance, ds: Dataset, open_consults: list[ConsultRequest]
) -> ConsultRequest | None:
    quoted = _quoted(ds)
    for consult in open_consults:
        if consult.placer_number.upper() in quoted:
            return consult
    for consult in open_consults:
        node = consult.sent_to.node if consult.sent_to else None
        if node is not None and instance.received_from and node.ae_title == instance.received_from:
            return consult
    return None


def sr_answers_file(instance_ids: Iterable[int]) -> list[ConsultReport]:
    """File the consult answers among these newly indexed instances; returns the reports filed."""
    from imaging.archive.stored import object_open
    from sharing.services import consult_report_file

    filed = []
    candidates = Instance.objects.filter(pk__in=list(instance_ids), sop_class_uid__in=TEXT_SR_CLASSES)
    for instance in candidates.select_related("series"):
        if ConsultReport.objects.filter(
            source=ConsultReport.Source.SR, source_id=instance.sop_instance_uid
        ).exists():
            continue
        study_id = instance.series.study_id
        open_consults = list(
            ConsultRequest.objects.filter(study_id=study_id)
            .exclude(status=ConsultRequest.Status.REPORTED)
            .select_related("sent_to__node", "study", "link")
            .order_by("-created_at", "-id")
        )
        # The common case, no consult open and no SR's report that a corrected SR could amend:
        # no file is read.
        if (
            not open_consults
            and not ConsultReport.objects.filter(study_id=study_id, source=ConsultReport.Source.SR).exists()
        ):
            continue
        with object_open(instance.storage_key) as handle:
            ds = dcmread(handle)
        if _measurements(ds):
            continue
        amends = _amended(ds, study_id)
        if amends is not None:  # a correction: its consult may be reported already
            consult = amends.consult
        else:
            consult = _consult_for(instance, ds, open_consults)
        if consult is None:
            continue
        text = sr_text(ds)
        sender = instance.received_from or "DICOM SR"
        try:
            filed.append(consult_report_file(
                consult=consult, author_name=sr_author(ds, sender)[:200], text=text,
                source=ConsultReport.Source.SR, source_id=instance.sop_instance_uid,
                status=_status(ds, amends), amends=amends, actor=Actor(channel=Channel.DICOM, name=sender),
            ))  # fmt: skip
        except Exception:  # an SR without text, say: the object stays indexed, the reason logged
            log.warning("SR %s not filed as consult %s's report", instance.sop_instance_uid, consult.pk,
                        exc_info=True)  # fmt: skip
    return filed

"""The signed report as a PDF for the referring vet and the owner: the clinic's letterhead
(CLINIC_NAME, CLINIC_ADDRESS), the animal and the study, the findings and conclusion as signed,
who signed it and when, and the key images (the current annotations' key images, their marks
drawn on them as in burned.py; none when none were flagged).

Only a final or amended report is exported: a draft is not yet the vet's word. fpdf2 writes the
PDF (pure Python, no system libraries); with a DejaVu TrueType font on the machine the text is
embedded as Unicode, else the PDF core font Helvetica is used (Latin-1: other characters are
shown as "?").
"""

import io
import logging
import os
from typing import Any

from django.conf import settings
from django.utils.timezone import localtime
from fpdf import FPDF

from imaging.annotations.services import annotations_current
from imaging.archive.rendering import CannotRender
from imaging.export.burned import frame_drawn, image_annotations, marks_draw
from imaging.export.selection import NotExportable
from imaging.models import Instance, Report, Study
from vetclinic.audit.services import Actor, audit_record

log = logging.getLogger(__name__)
FONT_FOLDERS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu")
KEY_IMAGE_SIZE = 900  # pixels a side: sharp at the width of an A4 page's text column


class NoReport(LookupError):
    """The study has no report."""


def report_pdf(*, actor: Actor, study: Study) -> bytes:
    """The PDF of the study's signed report, audited. Raises NoReport; NotExportable
    (``report``) for a draft."""
    report = Report.objects.filter(study=study).select_related("signed_by").first()
    if report is None:
        raise NoReport("The study has no report.")
    if not report.is_final:
        raise NotExportable(
            "report", "The report is a draft: only a signed (final or amended) report is exported."
        )
    document = _Letterhead()
    document.add_page()
    _heading(document, study, report)
    _text(document, "Findings", report.findings)
    _text(document, "Conclusion", report.conclusion)
    signed = f"Signed by {report.signed_by_name or 'the reporting vet'}"
    if report.finalized_at:
        signed += f" on {localtime(report.finalized_at):%Y-%m-%d %H:%M}"  # the clinic's time (TIME_ZONE)
    if report.status == Report.Status.AMENDED:
        signed += f" (amended, version {report.version})"
    document.font_use("", 10)
    document.ln(2)
    document.multi_cell(0, 5, document.safe(signed), new_x="LMARGIN", new_y="NEXT")
    shown = _key_images(document, study)
    audit_record(
        actor=actor, instance=study, action="exported",
        changes={"format": ["pdf"], "report_version": [report.version], "key_images": [shown]},
    )  # fmt: skip
    return bytes(document.output())


class _Letterhead(FPDF):
    """An A4 page with the clinic's name and address at its head and page numbers at its foot."""

    def __init__(self) -> None:
        super().__init__(format="A4")
        self.body_family, self.unicode_text = "helvetica", False
        for folder in FONT_FOLDERS:
            regular, bold = (
                os.path.join(folder, "DejaVuSans.ttf"),
                os.path.join(folder, "DejaVuSans-Bold.ttf"),
            )
            if os.path.exists(regular) and os.path.exists(bold):
                self.add_font("dejavu", "", regular)
                self.add_font("dejavu", "B", bold)
                self.body_family, self.unicode_text = "dejavu", True
                break

    def font_use(self, weight: str, size: float) -> None:
        self.set_font(self.body_family, weight, size)

    def safe(self, text: str) -> str:
        """Text the font can show: all of it with the embedded Unicode font, else Latin-1."""
        return text if self.unicode_text else text.encode("latin-1", "replace").decode("latin-1")

    def header(self) -> None:
        self.font_use("B", 16)
        self.cell(0, 8, self.safe(settings.CLINIC_NAME), new_x="LMARGIN", new_y="NEXT")
        self.font_use("", 9)
        for line in settings.CLINIC_ADDRESS.splitlines():
            self.cell(0, 4.5, self.safe(line), new_x="LMARGIN", new_y="NEXT")
        self.set_draw_color(120, 120, 120)
        self.line(self.l_margin, self.get_y() + 2, self.w - self.r_margin, self.get_y() + 2)
        self.ln(6)

    def footer(self) -> None:
        self.set_y(-12)
        self.font_use("", 8)
        self.cell(0, 5, f"Page {self.page_no()}/{{nb}}", align="R")


def _heading(document: _Letterhead, study: Study, report: Report) -> None:
    document.font_use("B", 13)
    document.cell(0, 7, "Diagnostic imaging report", new_x="LMARGIN", new_y="NEXT")
    document.font_use("", 10)
    patient = study.patient
    rows: list[tuple[str, str]] = []
    if patient is not None:
        breed = str(patient.breed or patient.breed_text or "")
        rows.append(("Animal", f"{patient.name} ({patient.patient_id})"))
        rows.append(("Species", f"{patient.species}" + (f", {breed}" if breed else "")))
        owner = patient.primary_owner
        if owner is not None:
            rows.append(("Owner", str(owner)))
    else:
        rows.append(("Animal", study.dicom_patient_name or "not linked to a record"))
    rows += [
        ("Study", study.description or "(no description)"),
        ("Study date", str(study.study_date or "unknown")),
        ("Accession", study.accession_number or "-"),
    ]
    if study.referring_physician:
        rows.append(("Referring vet", study.referring_physician))
    for label, value in rows:
        document.font_use("B", 10)
        document.cell(32, 5.5, document.safe(label))
        document.font_use("", 10)
        document.multi_cell(0, 5.5, document.safe(value), new_x="LMARGIN", new_y="NEXT")
    document.ln(3)


def _text(document: _Letterhead, title: str, body: str) -> None:
    document.font_use("B", 11)
    document.cell(0, 7, title, new_x="LMARGIN", new_y="NEXT")
    document.font_use("", 10)
    document.multi_cell(0, 5, document.safe(body.strip() or "-"), new_x="LMARGIN", new_y="NEXT")
    document.ln(2)


def _key_images(document: _Letterhead, study: Study) -> int:
    """The key images, two to a row, each with its marks; returns how many were shown."""
    current = annotations_current(study=study)
    keys: list[dict[str, Any]] = list(current.key_images) if current else []
    pictures = []
    for key in keys:
        sop, frame = str(key.get("sopInstanceUid") or ""), int(key.get("frame") or 1)
        instance = Instance.objects.filter(series__study=study, sop_instance_uid=sop).first()
        if instance is None or instance.rows is None or not 1 <= frame <= instance.number_of_frames:
            continue
        try:
            picture = frame_drawn(instance, frame)
            marks = image_annotations(study=study, sop_instance_uid=sop, frame=frame)
            if marks:
                picture = marks_draw(picture, marks, instance.storage_key, frame)
        except CannotRender:
            log.warning("key image %s frame %s not drawn", sop, frame, exc_info=True)
            continue
        picture.thumbnail((KEY_IMAGE_SIZE, KEY_IMAGE_SIZE))
        pictures.append(picture)
    if not pictures:
        return 0
    document.font_use("B", 11)
    document.cell(0, 7, "Key images", new_x="LMARGIN", new_y="NEXT")
    column = (document.w - document.l_margin - document.r_margin - 6) / 2
    for start in range(0, len(pictures), 2):
        row = pictures[start : start + 2]
        height = max(column * picture.height / picture.width for picture in row)
        if document.get_y() + height > document.h - document.b_margin:
            document.add_page()
        y = document.get_y()
        for place, picture in enumerate(row):
            out = io.BytesIO()
            picture.save(out, "JPEG", quality=88)
            document.image(out, x=document.l_margin + place * (column + 6), y=y, w=column)
        document.set_y(y + height + 4)
    return len(pictures)

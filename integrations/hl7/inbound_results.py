"""Inbound HL7 results (ORU^R01, integrations/hl7/inbound.py passes them on): a teleradiology
service's or a specialist's answer to a consult, filed on the study as the consult report
through the one service the share link's form uses (sharing.services.consult_report_file).

Which consult (sharing.services.consult_for_answer):
- ORC-2 / OBR-2, the placer order number (EI.1): the consult's placer number, ``CONSULT-<pk>``,
  which the request gives the service to quote (HL7 2.5 4.5.1.2: the placer's own number
  comes back in a result);
- else (no placer number, or one that is not ours: the service's or the PMS's own) the
  study's Accession Number in OBR-18 (placer field 1, where IHE Radiology's SWF puts
  it, RAD TF-2 Table 4.4-6) and the study's latest consult not yet reported (the latest at all
  for a correction).
OBR-3 / ORC-3, the filler order number, is the reading service's own number for the job: it
names no consult of ours and is not used to find one.

What: every OBX whose value type (OBX-2) is text (TX, FT, ST), in order, each OBX-5 repetition a
line (FT's \\.br\\ a line break, 2.5 2.7.6); OBX-11 result status (table 0085): F final, P
preliminary (filed and shown as preliminary; the consult stays *received*), C corrected (a new
report that amends the last one). Who: OBR-32 principal result interpreter (NDL, its name in
subcomponents), else OBX-16 responsible observer (XCN), else the sender (MSH-3/MSH-4).

A repeat of the message (same sender, control id and content) never gets here (inbound.py
answers the first ACK); the report's source id (sender and MSH-10) is filed once besides.
"""

import re
from typing import TYPE_CHECKING

from integrations.hl7.messages import HL7Error, Segment, unescape

if TYPE_CHECKING:
    from integrations.hl7.inbound import Received
    from sharing.models import ConsultReport

TEXT_TYPES = ("TX", "FT", "ST")
STATUSES = {"F": "final", "P": "preliminary", "C": "corrected"}


# An FT layout command and its argument between two escape characters (HL7 2.7.6: .sp, .in,
# .ti, .sk, .ce, .fi or .nf; not .br, the line break, which _lines splits on), written for the
# usual escape character "\" (_layout_dropped swaps in a message's own).
FT_LAYOUT_COMMAND = re.compile(r"\\\.(?:sp|in|ti|sk|ce|fi|nf)[^\\]*\\")


def _layout_dropped(text: str, escape: str) -> str:
    """``text`` without its layout commands: they only lay the text out. A message whose escape
    character (MSH-2) is not "\\" has the two characters swapped around the match, which moves
    nothing else."""
    if escape == "\\":
        return FT_LAYOUT_COMMAND.sub("", text)
    swap = str.maketrans({escape: "\\", "\\": escape})
    return FT_LAYOUT_COMMAND.sub("", text.translate(swap)).translate(swap)


def _lines(obx: Segment) -> list[str]:
    """OBX-5's repetitions as lines; FT's formatting command .br is a line break."""
    escape = obx.header.encoding[2] if len(obx.header.encoding) > 2 else "\\"
    return [
        unescape(_layout_dropped(part, escape), obx.header)
        for repetition in obx.repeats(5)
        for part in repetition.split(f"{escape}.br{escape}")
    ]


def _person(family: str, given: str, fallback: str = "") -> str:
    return " ".join(p for p in (given, family) if p) or fallback


def _author(received: "Received", obr: Segment, observations: list[Segment]) -> str:
    sub = received.header.encoding[3] if len(received.header.encoding) > 3 else "&"
    name = obr.component(32, 1).split(sub)  # NDL.1 is CNN: id&family&given
    if len(name) > 1 and (name[1] or (len(name) > 2 and name[2])):
        return _person(name[1], name[2] if len(name) > 2 else "")
    for obx in observations:
        if obx.component(16, 2) or obx.component(16, 3):
            return _person(obx.component(16, 2), obx.component(16, 3))
    return (received.header.sending_application.split(received.header.component)[0]
            or received.header.sending_facility or "Teleradiology service")  # fmt: skip


def _status(observations: list[Segment]) -> str:
    """One status for the report: corrected if any OBX is, preliminary if all are, else final."""
    given = set()
    for obx in observations:
        code = obx[11].strip().upper()
        if code not in STATUSES:
            raise HL7Error(
                f"OBX-11 '{code or '(empty)'}' is not a result status we file (F, P or C)",
                code=103 if code else 101, segment="OBX", field=11,
            )  # fmt: skip
        given.add(STATUSES[code])
    if "corrected" in given:
        return "corrected"
    return "preliminary" if given == {"preliminary"} else "final"


def result_message(received: "Received") -> "ConsultReport":
    """ORU^R01: the consult's answer, filed as its consult report."""
    from sharing.models import ConsultReport, ConsultRequest
    from sharing.services import consult_for_answer, consult_report_file

    obr = received.one("OBR")
    orc = received.one("ORC", required=False)
    observations = [obx for obx in received.all("OBX") if obx[2].upper() in TEXT_TYPES]
    if not observations:
        raise HL7Error("No OBX with a text value (OBX-2 TX, FT or ST): nothing to file",
                       code=101, segment="OBX", field=5)  # fmt: skip
    status = _status(observations)
    placer = ((orc.component(2, 1) if orc else "") or obr.component(2, 1)).strip()
    accession = obr[18].strip()
    consult = consult_for_answer(placer=placer, accession=accession, corrected=status == "corrected")
    if consult is None:
        if placer and (placer.upper().startswith(ConsultRequest.PLACER_PREFIX) or not accession):
            where = ("ORC", 2) if orc and orc.component(2, 1) else ("OBR", 2)
            raise HL7Error(f"{where[0]}-{where[1]}: no consult with placer number {placer[:40]}",
                           code=204, segment=where[0], field=where[1])  # fmt: skip
        if accession:
            raise HL7Error(f"OBR-18: no open consult on a study with accession number {accession[:40]}",
                           code=204, segment="OBR", field=18)  # fmt: skip
        raise HL7Error("OBR-2 (placer order number) and OBR-18 (accession number) are empty: which consult?",
                       code=101, segment="OBR", field=2)  # fmt: skip
    text = "\n".join(line for obx in observations for line in _lines(obx)).strip()
    if not text:
        raise HL7Error("OBX-5 is empty: no text to file", code=101, segment="OBX", field=5)
    return consult_report_file(
        consult=consult, author_name=_author(received, obr, observations)[:200], text=text,
        source=ConsultReport.Source.HL7, status=status, actor=received.actor,
        source_id=f"{received.system}:{received.header.control_id}" if received.header.control_id else "",
    )  # fmt: skip

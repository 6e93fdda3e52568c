"""Reading and answering HL7 v2 messages: pure functions, no database.

hl7apy checks a message's structure against its version's definition (``structure_check``);
the values are then read from the ER7 text by position (``Segment``), which is what the inbound
handlers need and what a sloppy sender's message still allows. The ACK is formatted here
directly: hl7apy takes ~10 ms to build one, the whole per-message budget of the listener.
"""

import hashlib
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from re import Pattern

from django.utils.timezone import localtime, now
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from vetclinic.cache import Kept

# 2.2 and 2.3 too: practice-management systems still send them (hl7apy knows both).
SUPPORTED_VERSIONS = ("2.2", "2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6")


class HL7Error(Exception):
    """Bad data in a message: answered AE (or AR) with an ERR naming where and what.

    ``code`` is from HL7 table 0357: 100 segment sequence error, 101 required field missing,
    102 data type error, 103 table value not found, 200 unsupported message type, 201
    unsupported event code, 203 unsupported version, 204 unknown key identifier, 207
    application internal error.
    """

    TEXT = {100: "Segment sequence error", 101: "Required field missing", 102: "Data type error",
            103: "Table value not found", 200: "Unsupported message type", 201: "Unsupported event code",
            202: "Unsupported processing id", 203: "Unsupported version id", 204: "Unknown key identifier",
            205: "Duplicate key identifier", 207: "Application internal error"}  # fmt: skip

    def __init__(
        self, message: str, *, code: int = 207, segment: str = "", field: int = 0, reject: bool = False
    ) -> None:
        super().__init__(message)
        self.code, self.segment, self.field, self.reject = code, segment, field, reject


@dataclass
class Header:
    """MSH as far as an ACK needs it; read even from a message hl7apy would refuse."""

    field_separator: str = "|"
    encoding: str = "^~\\&"
    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    message_type: str = ""  # MSH-9.1^MSH-9.2
    control_id: str = ""
    processing_id: str = "P"
    version: str = ""
    charset: str = ""
    fields: list[str] = field(default_factory=list)

    @property
    def component(self) -> str:
        return self.encoding[0]


def text_decode(data: bytes) -> str:
    """HL7 text: UTF-8 when it is valid UTF-8 (MSH-18 UNICODE UTF-8), else ISO 8859-1."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def segments(text: str) -> list[str]:
    """Segments split on CR; LF and CRLF (sent by some engines) are accepted too."""
    return [s for s in re.split(r"\r\n|\r|\n", text) if s.strip()]


def header_read(text: str) -> Header:
    """MSH of ``text``; raises HL7Error if there is none."""
    lines = segments(text)
    if not lines or not lines[0].startswith("MSH") or len(lines[0]) < 8:
        raise HL7Error("The message does not start with an MSH segment", code=100, segment="MSH", reject=True)
    msh = lines[0]
    sep = msh[3]
    parts = msh.split(sep)
    # MSH-1 is the separator itself, so MSH-n is parts[n - 1].

    def get(n: int) -> str:
        return parts[n - 1] if len(parts) >= n else ""

    encoding = get(2)
    component = encoding[0] if encoding else "^"
    msg_type = get(9).split(component)
    return Header(
        field_separator=sep, encoding=encoding or "^~\\&",
        sending_application=get(3), sending_facility=get(4),
        receiving_application=get(5), receiving_facility=get(6),
        message_type=component.join(msg_type[:2]), control_id=get(10),
        processing_id=get(11).split(component)[0] or "P", version=get(12).split(component)[0],
        charset=get(18), fields=parts,
    )  # fmt: skip


# Message shapes hl7apy has accepted (see ``structure_check``); bounded, since every sender
# has a handful of shapes, and cleared when full rather than kept in order.
accepted_shapes = Kept("message shapes hl7apy accepted", seconds=None, most=2048)
# Encoding characters -> the pattern of a value between them; bounded, since MSH-2 is the
# sender's to choose.
value_patterns = Kept("HL7 value patterns", seconds=None, most=64)


def structure_check(text: str, header: Header) -> None:
    """The message's structure checked by hl7apy against its version (tolerantly: real
    senders leave out optional segments and fields), or HL7Error.

    hl7apy takes ~10 ms a message, more than the rest of an ADT's handling, and in tolerant
    mode its verdict does not depend on the values, only on the shape (``_shape``): a value
    that does not fit its data type is kept as text, never refused. So a shape accepted once
    is accepted again without asking hl7apy; refusals are not remembered (they are rare, and
    their error text comes from hl7apy).
    """
    if header.version not in SUPPORTED_VERSIONS:
        raise HL7Error(
            f"Version {header.version or '(none)'} is not supported; send 2.2 to 2.6",
            code=203, segment="MSH", field=12, reject=True,
        )  # fmt: skip
    lines = segments(text)
    shape = _shape(lines, header)
    if shape is not None and shape in accepted_shapes:
        return
    try:
        parse_message("\r".join(lines), validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=False)
    except Exception as error:  # hl7apy raises a dozen kinds; they all mean "not this structure"
        raise HL7Error(f"The message cannot be parsed: {error}"[:200], code=100) from None
    if shape is not None:
        accepted_shapes.set(shape, True)


def _shape(lines: list[str], header: Header) -> str | None:
    """Everything of a message that hl7apy's tolerant parse looks at (hl7apy/parser.py): the
    separators, the segment names, MSH-2, MSH-9 (type and structure) and MSH-12 (version)
    verbatim; of every other field its layout of repetitions, components and subcomponents
    and which of them are empty or only blanks (those it skips), each other value as "x".
    None when the separators are not the four it needs (hl7apy is asked every time)."""
    sep, encoding = header.field_separator, header.encoding
    if len(encoding) != 4 or len(set(sep + encoding)) != 5:
        return None
    value: Pattern[str] | None = value_patterns.get(encoding)
    if value is None:
        # A run between separators with something other than blanks in it (the escape
        # character is data to the parser).
        delimiters = re.escape(encoding[0] + encoding[1] + encoding[3])
        value = re.compile(f"[^{delimiters}]*[^{delimiters}\\s][^{delimiters}]*")
        value_patterns.set(encoding, value)
    shaped = []
    for line in lines:
        fields = line.split(sep)
        keep = (0, 1, 8, 11) if line.startswith("MSH") else (0,)
        shaped.append(sep.join(f if n in keep else value.sub("x", f) for n, f in enumerate(fields)))
    return sep + "\r".join(shaped)


class Segment:
    """One segment's fields by position, with the message's separators.

    ``seg[3]`` is field 3 (first repetition) as text; ``seg.component(3, 2)``; ``seg.repeats(3)``.
    Escape sequences (\\F\\ \\S\\ \\T\\ \\R\\ \\E\\) are decoded in what it returns.
    """

    def __init__(self, line: str, header: Header) -> None:
        self.header = header
        self.name = line[:3]
        self.fields = line.split(header.field_separator)
        if self.name == "MSH":  # MSH-1 is the separator: shift so that MSH-n is fields[n]
            self.fields.insert(1, header.field_separator)

    def raw(self, n: int) -> str:
        return self.fields[n] if n < len(self.fields) else ""

    def repeats(self, n: int) -> list[str]:
        return [r for r in self.raw(n).split(self.header.encoding[1])] if self.raw(n) else []

    def __getitem__(self, n: int) -> str:
        reps = self.repeats(n)
        return unescape(reps[0], self.header) if reps else ""

    def components(self, n: int, repetition: str | None = None) -> list[str]:
        value = repetition if repetition is not None else (self.repeats(n) or [""])[0]
        return [unescape(c, self.header) for c in value.split(self.header.component)]

    def component(self, n: int, c: int, repetition: str | None = None) -> str:
        parts = self.components(n, repetition)
        return parts[c - 1] if c <= len(parts) else ""


def unescape(value: str, header: Header) -> str:
    e = header.encoding[2] if len(header.encoding) > 2 else "\\"  # the message's own (MSH-2)
    if e not in value:
        return value
    table = {"F": header.field_separator, "S": header.component, "R": header.encoding[1], "E": e,
             "T": header.encoding[3] if len(header.encoding) > 3 else "&"}  # fmt: skip
    return re.sub(re.escape(e) + r"([FSRET])" + re.escape(e), lambda m: table[m.group(1)], value)


def escape(value: object, header: Header | None = None) -> str:
    """Text safe inside a field (HL7 2.7.4 escape sequences)."""
    text = str(value or "")
    for char, seq in (("\\", "\\E\\"), ("|", "\\F\\"), ("^", "\\S\\"), ("~", "\\R\\"), ("&", "\\T\\")):
        text = text.replace(char, seq)
    return text.replace("\r", "\\X0D\\").replace("\n", "\\X0A\\")


def message_digest(text: str, header: Header) -> str:
    """SHA-256 of the message's segments. With a control id, MSH-7 is left out: a sender
    resending a message keeps its control id but may stamp it anew (HL7 2.9 2.10.1). Without
    one, the whole message: only the very same message again is a repeat."""
    lines = segments(text)
    if header.control_id and lines:
        fields = lines[0].split(header.field_separator)
        if len(fields) > 6:
            fields[6] = ""  # MSH-7 (MSH-1 is the separator itself)
        lines[0] = header.field_separator.join(fields)
    return hashlib.sha256("\r".join(lines).encode()).hexdigest()


def message_segments(text: str, header: Header) -> list[Segment]:
    return [Segment(line, header) for line in segments(text)]


def hl7_date(value: str, *, segment: str, field: int) -> date | None:
    """DT/TS/DTM (YYYY[MM[DD[HHMM[SS]]]]) as a date; HL7Error (102) otherwise."""
    value = value.strip()
    if not value:
        return None
    match = re.fullmatch(r"(\d{4})(\d{2})?(\d{2})?(\d{2,6})?(\.\d+)?([+-]\d{4})?", value)
    try:
        if not match:
            raise ValueError
        return date(int(match.group(1)), int(match.group(2) or 1), int(match.group(3) or 1))
    except ValueError:
        raise HL7Error(
            f"{segment}-{field} '{value[:20]}' is not a date", code=102, segment=segment, field=field
        ) from None


def hl7_datetime(value: str, *, segment: str, field: int) -> datetime | None:
    """TS/DTM as an aware datetime in the clinic's time zone (or its own offset)."""
    from django.utils.timezone import get_current_timezone, make_aware

    value = value.strip()
    if not value:
        return None
    match = re.fullmatch(r"(\d{4})(\d{2})(\d{2})(\d{2})?(\d{2})?(\d{2})?(\.\d+)?([+-]\d{4})?", value)
    try:
        if not match:
            raise ValueError
        y, mo, d, h, mi, s, _, offset = match.groups()
        moment = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0))
        if offset:
            return datetime.strptime(f"{moment:%Y%m%d%H%M%S}{offset}", "%Y%m%d%H%M%S%z")
        return make_aware(moment, get_current_timezone())
    except ValueError:
        raise HL7Error(
            f"{segment}-{field} '{value[:20]}' is not a date and time", code=102, segment=segment, field=field
        ) from None


def timestamp() -> str:
    return localtime(now()).strftime("%Y%m%d%H%M%S")


def ack_build(
    header: Header,
    *,
    code: str,
    error: HL7Error | None = None,
    application: str = "VETPACS",
    facility: str = "",
) -> str:
    """ACK (MSH, MSA, ERR) to ``header``'s message, in its version (2.9 2.13.1 general ACK).

    ERR is written both ways: ERR-1 (ELD, up to 2.4) and ERR-2/3/4 (2.5 on), so that every
    version's reader finds the location and the code.
    """
    sep, enc = header.field_separator, header.encoding
    comp = enc[0]
    trigger = header.message_type.split(comp)[1] if comp in header.message_type else ""
    # The sender's version, whatever it is, so that its parser reads the answer (an ACK is the
    # same in every version); 2.5.1 only when MSH-12 is not a version at all.
    version = header.version if re.fullmatch(r"2\.\d(\.\d{1,2})?", header.version) else "2.5.1"
    # MSH-9.3 (message structure) exists from 2.3.1 on.
    structure = [] if version in ("2.1", "2.2", "2.3") else ["ACK"]
    msh = sep.join([
        "MSH", enc, application, facility, header.sending_application, header.sending_facility, timestamp(), "",
        comp.join(["ACK", trigger, *structure]) if trigger else "ACK",
        f"A{header.control_id}"[:20] if header.control_id else f"A{timestamp()}",
        header.processing_id or "P", version,
    ])  # fmt: skip
    text = error.args[0] if error else ""
    msa = sep.join(["MSA", code, header.control_id, escape(text)[:80]])
    lines = [msh, msa]
    if error is not None:
        sub = enc[3] if len(enc) > 3 else "&"
        eld = comp.join([error.segment, "1" if error.segment else "", str(error.field or ""),
                         sub.join([str(error.code), HL7Error.TEXT.get(error.code, ""), "HL70357"])])  # fmt: skip
        erl = comp.join([error.segment, "1" if error.segment else "", str(error.field or "")])
        cwe = comp.join([str(error.code), HL7Error.TEXT.get(error.code, ""), "HL70357"])
        lines.append(sep.join(["ERR", eld, erl, cwe, "E", "", "", "", escape(text)]))
    return "\r".join(lines) + "\r"

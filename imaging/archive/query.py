"""Query/Retrieve matching (PS3.4 C.6), done by the database: the one service behind the DICOM
listener's C-FIND (Patient Root and Study Root, imaging/dicom/net/handlers.py) and QIDO-RS
(integrations/dicomweb/qido.py).

A query names its level and its keys (keyword -> matching value, None for a return key); each
key's value is read once into a shape and values, which make its condition (query_keys.py, with
the worklist's matching primitives, PS3.4 C.2.2.2), and the answers come back as rows per entity
(query_answers.Answer), which each adapter writes as data sets or DICOM JSON. A study search (what
viewers send) is one statement compiled once per shape and prepared (STUDIES_PAGE): the page of
matching ids, read first as its subquery, then their rows with the animal's record and owner
joined, and the modalities and counts when asked. The other levels read in two steps: the ids
matching, in the answers' order, then the rows of those ids. Either way the matching statement
names only the tables its keys need.

Patient attributes match the animal's record for a linked study and the headers for an
unlinked one (query_keys.PATIENT_KEYS): each side is a list of ids read first (``= ANY(ARRAY(
subquery))``, vetclinic/db.py IdIn), so that both are index scans (Patient.dicom_name_key,
Study's ``study_unlinked_*`` indexes) combined with the date and modality conditions.

The Patient Root PATIENT level answers the animals that have studies and, for unlinked studies,
each Patient ID their headers named (the first name, species ... of its studies).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db.models import (
    Count,
    Exists,
    F,
    FilteredRelation,
    Func,
    Max,
    Model,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)

from imaging.archive.query_keys import (
    ANY_LEVEL,
    IMAGE_KEYS,
    PATIENT_KEYS,
    SERIES_KEYS,
    STUDY_KEYS,
    Key,
    Parsed,
    date_time_combined,
    key_check,
)
from imaging.dicom.records.datasets import OWNER, OWNER_COLUMNS, PATIENT_COLUMNS, Row
from imaging.dicom.records.matching import MatchingError
from imaging.dicom.records.query_answers import (
    HEADER_COLUMNS,
    INSTANCE_COLUMNS,
    SERIES_COLUMNS,
    STUDY_COLUMNS,
    Answer,
    Level,
)
from imaging.models import Instance, Series, Study
from patients.models import Patient
from vetclinic.audit.services import Actor, audit_read
from vetclinic.db import CompiledQuery, IdIn, RowsById


class Root(StrEnum):
    """The information model (PS3.4 C.6.1 Patient Root, C.6.2 Study Root); QIDO-RS is Study Root."""

    PATIENT = "PATIENT"
    STUDY = "STUDY"


@dataclass(frozen=True)
class Query:
    """``level`` as the request said it (checked by archive_find); ``keys``: keyword -> matching
    value as DICOM writes it (wildcards, ranges, backslash-separated lists), None for a key that
    is only to be answered (universal matching, C.2.2.2.3)."""

    level: str | None
    keys: Mapping[str, str | None]
    root: Root = Root.STUDY
    limit: int | None = None
    offset: int = 0
    # Study Date and Study Time ranges as one (PS3.4 C.2.2.2.5.4): only for a C-FIND association
    # that agreed combined date-time matching (C.5.1.1); otherwise each on its own.
    combined_datetime: bool = False


@dataclass
class Found:
    level: Level
    answers: list[Answer]
    # Keys given a value that we answer but do not match on (PS3.4 C.4.1.1.4: Pending 0xFF01).
    unsupported: list[str] = field(default_factory=list)
    more: bool = False  # a limit left matches out


# The order answers come in (and limit/offset count in): newest studies first.
STUDY_ORDER = ("-study_date", "-study_time", "-id")
SERIES_ORDER = ("study_id", "series_number", "id")
INSTANCE_ORDER = ("series_id", "instance_number", "id")
LEVEL_MODEL: dict[Level, type[Model]] = {
    Level.PATIENT: Patient, Level.STUDY: Study, Level.SERIES: Series, Level.IMAGE: Instance,
}  # fmt: skip


def query_level(query: Query) -> Level:
    """The query's level, or MatchingError (PS3.4 C.4.1.2.1: Query/Retrieve Level is required)."""
    if not query.level:
        raise MatchingError("QueryRetrieveLevel is missing")
    try:
        level = Level(query.level.strip().upper())
    except ValueError:
        raise MatchingError(f"QueryRetrieveLevel '{query.level[:16]}' is not a level") from None
    if level is Level.PATIENT and query.root is Root.STUDY:
        raise MatchingError("QueryRetrieveLevel PATIENT is not in the Study Root model")
    return level


def archive_find(*, actor: Actor, query: Query) -> Found:
    """The answers to ``query``, audited (who, level, keys, how many). Raises MatchingError for
    an identifier we cannot make sense of, DatabaseError when the database cannot answer."""
    level = query_level(query)
    matched: dict[str, str] = {}
    unsupported = []
    for keyword, value in query.keys.items():
        if key_check(keyword, value, level, patient_root=query.root is Root.PATIENT):
            if value is not None:
                matched[keyword] = value
        elif value is not None and keyword not in ANY_LEVEL:
            unsupported.append(keyword)
    if query.combined_datetime:
        matched = date_time_combined(matched)
    returned = set(query.keys)
    limit = None if query.limit is None else query.limit + 1  # one more: are there more?
    answers = FIND[level](parsed_keys(matched), returned, limit, query.offset)
    more = query.limit is not None and len(answers) > query.limit
    if more:
        answers = answers[: query.limit]
    # One entry per query, on the kind of record searched (the level's model: a query names no
    # one record): who (the actor), the level, the matching keys and how many answers.
    keys = ", ".join(f"{k}={v}" for k, v in matched.items())
    changes: dict[str, list[str | int | None]] = {
        "level": [None, level.value], "keys": [None, keys[:1000]], "answers": [None, len(answers)],
    }  # fmt: skip
    audit_read(
        actor=actor,
        instance=ContentType.objects.get_for_model(LEVEL_MODEL[level]),
        action="query",
        changes=changes,
    )
    return Found(level=level, answers=answers, unsupported=unsupported, more=more)


# The keys of a query as read once (query_keys.Parsed), by keyword.
ParsedKeys = Mapping[str, Parsed]


def parsed_keys(matched: Mapping[str, str]) -> dict[str, Parsed]:
    """Each matching key's value read (MatchingError for one that cannot be), in a fixed order
    (the keys' tables'), so that a query's shape does not depend on the order of its keys."""
    return {
        keyword: key.parse(matched[keyword])
        for keys in (PATIENT_KEYS, STUDY_KEYS, SERIES_KEYS, IMAGE_KEYS)
        for keyword, key in keys.items()
        if keyword in matched
    }


def _patient_conditions(parsed: ParsedKeys) -> tuple[Q, Q, bool]:
    """(condition on Patient, condition on Study headers, any patient key given)."""
    record, headers = Q(), Q()
    for keyword, key in PATIENT_KEYS.items():
        if keyword in parsed:
            on_record, on_headers = key.condition(*parsed[keyword])
            record &= on_record
            headers &= on_headers
    return record, headers, any(k in parsed for k in PATIENT_KEYS)


def _study_condition(parsed: ParsedKeys) -> Q:
    """The studies matching the patient and study keys."""
    condition = _condition(STUDY_KEYS, parsed)
    record, headers, any_patient_key = _patient_conditions(parsed)
    if any_patient_key:
        # Unordered: each is an id list read first (the models' default orderings would sort it).
        linked = Patient.objects.filter(record).order_by().values("id")
        unlinked = Study.objects.filter(headers, patient__isnull=True).order_by().values("id")
        condition &= Q(IdIn(F("patient_id"), linked)) | Q(IdIn(F("id"), unlinked))
    return condition


def _condition(keys: Mapping[str, Key], parsed: ParsedKeys) -> Q:
    condition = Q()
    for keyword, key in keys.items():
        if keyword in parsed:
            condition &= key.condition(*parsed[keyword])
    return condition


def _page(ids: QuerySet[Any, int], limit: int | None, offset: int) -> list[int]:
    return list(ids[offset : None if limit is None else offset + limit])


def _studies_page(
    values: dict[str, tuple[Any, ...]],
    shapes: tuple[tuple[str, Any], ...],
    offset: int,
    limit: int | None,
    counted: bool,
) -> QuerySet[Study, dict[str, Any]]:
    """The rows of a page of the matching studies (the keys' values by keyword, their shapes),
    in the answers' order: the page's ids are the statement's subquery, read first (IdIn);
    ``counted``: with each study's modalities, series and instances."""
    parsed = {keyword: (shape, values[keyword]) for keyword, shape in shapes}
    ids = Study.objects.filter(_study_condition(parsed)).order_by(*STUDY_ORDER).values("id")
    page = ids[offset : None if limit is None else offset + limit]
    rows = _study_rows_by_id(IdIn(F("id"), page)).order_by(*STUDY_ORDER)
    if counted:
        series = Series.objects.filter(study=OuterRef("id"))
        # A study's instances by its series' ids read first (IdIn: ``= ANY(ARRAY(...))``), so
        # that each is an index scan whatever the planner guesses: as a join, a generic plan
        # on statistics taken while the archive was loading read every instance for each study.
        in_series = Series.objects.filter(study=OuterRef(OuterRef("id"))).order_by().values("id")
        rows = rows.annotate(
            modalities=StudyModalities(),
            series_count=_count_of(series),
            instance_count=_count_of(Instance.objects.filter(IdIn(F("series_id"), in_series))),
        )
    return rows


def _count_of(related: QuerySet[Any, Any]) -> Subquery:
    """How many rows of ``related`` (a study's series or instances), as a subquery (COUNT as a
    plain function: no GROUP BY, one row even when there are none)."""
    return Subquery(related.order_by().annotate(n=Func(F("id"), function="COUNT")).values("n"))


class StudyModalities(Subquery):
    """A study's modalities (ModalitiesInStudy): the distinct non-empty ones of its series,
    sorted; an array on PostgreSQL, elsewhere one text of them joined by backslashes
    (_modalities_of reads both)."""

    def __init__(self) -> None:
        series = Series.objects.filter(study=OuterRef("id")).exclude(modality="")
        super().__init__(series.order_by("modality").values("modality").distinct())

    # The stubs type params as a tuple of str/int; Django's Subquery returns what its query gives.
    def as_sql(self, compiler: Any, connection: Any, template: str | None = None, **extra: Any) -> Any:
        sql, params = super().as_sql(compiler, connection, template, **extra)  # "(SELECT ...)"
        if connection.vendor == "postgresql":
            return f"ARRAY{sql}", params
        return f"(SELECT group_concat(modality, char(92)) FROM {sql})", params


def _modalities_of(value: list[str] | str | None) -> list[str]:
    if isinstance(value, list):
        return sorted(value)
    return sorted(value.split("\\")) if value else []


# A study search in one statement: its page's ids and their rows with the animal and its owner
# (and when asked, its modalities and counts), compiled once per shape (the keys given and the
# kind of each value, the page's bounds) and prepared with one plan for every value
# (vetclinic/db.py): Django's building and compiling of the matching statement took more CPU
# than PostgreSQL took to run it, and planning it as much; each further statement is a round
# trip to the database.
STUDIES_PAGE = CompiledQuery(_studies_page, prepare=True)


def _studies_find(parsed: ParsedKeys, returned: set[str], limit: int | None, offset: int) -> list[Answer]:
    values = {keyword: values for keyword, (_, values) in parsed.items()}
    shapes = tuple((keyword, shape) for keyword, (shape, _) in parsed.items())
    counted = bool(returned & STUDY_COUNTS)
    rows = STUDIES_PAGE.run(values, shape=(shapes, offset, limit, counted))
    if counted:
        for row in rows:
            row["modalities"] = _modalities_of(row["modalities"])
    return [{Level.STUDY: row} for row in rows]


def _series_find(parsed: ParsedKeys, returned: set[str], limit: int | None, offset: int) -> list[Answer]:
    condition = _condition(SERIES_KEYS, parsed)
    if any(k in parsed for k in (*STUDY_KEYS, *PATIENT_KEYS)):
        condition &= Q(
            IdIn(F("study_id"), Study.objects.filter(_study_condition(parsed)).order_by().values("id"))
        )
    ids = Series.objects.filter(condition).order_by(*SERIES_ORDER).values_list("id", flat=True)
    rows = series_rows(_page(ids, limit, offset), returned)
    studies = {row["id"]: row for row in study_rows(sorted({r["study_id"] for r in rows}), returned)}
    return [
        {Level.STUDY: studies[row["study_id"]], Level.SERIES: row}
        for row in rows
        if row["study_id"] in studies
    ]


def _instances_find(parsed: ParsedKeys, returned: set[str], limit: int | None, offset: int) -> list[Answer]:
    condition = _condition(IMAGE_KEYS, parsed)
    if any(k in parsed for k in (*SERIES_KEYS, *STUDY_KEYS, *PATIENT_KEYS)):
        in_series = Series.objects.filter(_condition(SERIES_KEYS, parsed))
        if any(k in parsed for k in (*STUDY_KEYS, *PATIENT_KEYS)):
            in_series = in_series.filter(
                IdIn(F("study_id"), Study.objects.filter(_study_condition(parsed)).order_by().values("id"))
            )
        condition &= Q(IdIn(F("series_id"), in_series.order_by().values("id")))
    ids = Instance.objects.filter(condition).order_by(*INSTANCE_ORDER).values_list("id", flat=True)
    rows = list(Instance.objects.filter(IdIn(F("id"), _page(ids, limit, offset))).order_by(*INSTANCE_ORDER)
                .values(*INSTANCE_COLUMNS))  # fmt: skip
    series = {row["id"]: row for row in series_rows(sorted({r["series_id"] for r in rows}), returned)}
    studies = {
        row["id"]: row for row in study_rows(sorted({r["study_id"] for r in series.values()}), returned)
    }
    answers: list[Answer] = []
    for row in rows:
        one_series = series.get(row["series_id"])
        if one_series is not None and one_series["study_id"] in studies:
            answers.append(
                {Level.STUDY: studies[one_series["study_id"]], Level.SERIES: one_series, Level.IMAGE: row}
            )
    return answers


# The study attributes that are counted (or gathered) from its series, not read from its row.
STUDY_COUNTS = {"ModalitiesInStudy", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"}


def study_rows(ids: list[int], returned: set[str]) -> list[Row]:
    """The studies' rows (query_answers.STUDY_COLUMNS), in the order of ``ids``, with the
    modalities and counts when ``returned`` names them."""
    if not ids:
        return []
    rows = STUDY_ROWS_BY_ID.rows(ids)
    if returned & STUDY_COUNTS:
        _study_counts(rows)
    return rows


def _series_groups(ids: list[int]) -> QuerySet[Any, Any]:
    groups = (
        Series.objects.filter(IdIn(F("study_id"), ids)).values("study_id", "modality")
        .annotate(series_n=Count("id", distinct=True), instances_n=Count("instances")).order_by()
    )  # fmt: skip
    return groups


# Per study and modality, its series and instances: one statement for any studies (IdIn),
# compiled once (vetclinic/db.py).
SERIES_GROUPS = CompiledQuery(_series_groups)


def _study_counts(rows: list[Row]) -> None:
    """Each row's modalities (the distinct non-empty ones, sorted) and its series and instances
    counted, from one grouped read for the three."""
    by_id = {row["id"]: row for row in rows}
    for row in rows:
        row.update(modalities=[], series_count=0, instance_count=0)
    if not rows:
        return
    for group in SERIES_GROUPS.run(list(by_id)):
        row = by_id[group["study_id"]]
        if group["modality"]:
            row["modalities"] = sorted({*row["modalities"], group["modality"]})
        row["series_count"] += group["series_n"]
        row["instance_count"] += group["instances_n"]


def _study_rows_by_id(condition: Q | Any) -> QuerySet[Study, dict[str, Any]]:
    rows: QuerySet[Study, dict[str, Any]] = (
        Study.objects.filter(condition)
        .annotate(
            primary_ownership=FilteredRelation(
                "patient__ownerships", condition=Q(patient__ownerships__is_primary=True)
            )
        )  # fmt: skip
        .values(*STUDY_COLUMNS)
    )
    return rows


# The studies' rows by id, with their animal and its primary owner joined (vetclinic/db.py): one
# statement text for any ids, compiled once per process and, in the listener, planned once per
# connection (PostgreSQL took longer to plan the seven-table join than to run it).
STUDY_ROWS_BY_ID = RowsById(_study_rows_by_id)


def series_rows(ids: list[int], returned: set[str]) -> list[Row]:
    """The series' rows (query_answers.SERIES_COLUMNS), in the order of ``ids``."""
    if not ids:
        return []
    by_id = {row["id"]: row for row in Series.objects.filter(IdIn(F("id"), ids)).values(*SERIES_COLUMNS)}
    rows = [by_id[i] for i in ids if i in by_id]
    if "NumberOfSeriesRelatedInstances" in returned:
        counts = dict(
            Instance.objects.filter(IdIn(F("series_id"), ids)).values("series_id").annotate(n=Count("id"))
            .order_by().values_list("series_id", "n")
        )  # fmt: skip
        for row in rows:
            row["instance_count"] = counts.get(row["id"], 0)
    return rows


def _patients_find(parsed: ParsedKeys, returned: set[str], limit: int | None, offset: int) -> list[Answer]:
    """Patient Root, PATIENT level: the animals with studies, then the Patient IDs that unlinked
    studies' headers named (not those of an animal with studies: one answer per Patient ID)."""
    record, headers, _ = _patient_conditions(parsed)
    animals = (
        Patient.objects.filter(record, Exists(Study.objects.filter(patient=OuterRef("pk"))))
        .annotate(primary_ownership=FilteredRelation("ownerships", condition=Q(ownerships__is_primary=True)))
        .order_by("dicom_name_key", "id")
        .values("id", *PATIENT_COLUMNS, *(f"primary_ownership__owner__{column}" for column in OWNER_COLUMNS))
    )
    rows: list[Row] = []
    for found in animals:
        row: Row = {
            "patient_id": found["id"],
            **{"patient__" + path: found[path] for path in PATIENT_COLUMNS},
        }
        row.update({OWNER + column: found[f"primary_ownership__owner__{column}"] for column in OWNER_COLUMNS})
        rows.append(row)
    known = Patient.objects.filter(patient_id=OuterRef("dicom_patient_id"), studies__isnull=False)
    groups = (
        Study.objects.filter(headers, patient__isnull=True).exclude(dicom_patient_id="").exclude(Exists(known))
        .values("dicom_patient_id").order_by("dicom_patient_id")
        .annotate(**{column: Max(column) for column in HEADER_COLUMNS if column != "dicom_patient_id"})
    )  # fmt: skip
    rows += [{"patient_id": None, **group} for group in groups]
    rows = rows[offset : None if limit is None else offset + limit]
    if returned & {
        "NumberOfPatientRelatedStudies",
        "NumberOfPatientRelatedSeries",
        "NumberOfPatientRelatedInstances",
    }:
        _patient_counts(rows)
    return [{Level.PATIENT: row} for row in rows]


def _patient_counts(rows: list[Row]) -> None:
    """Each patient's studies, series and instances (linked studies for an animal, unlinked
    ones naming its Patient ID for the others)."""
    animals = [row["patient_id"] for row in rows if row["patient_id"] is not None]
    others = [row["dicom_patient_id"] for row in rows if row["patient_id"] is None]
    counts: dict[tuple[str, Any], list[int]] = {}
    per_study = (
        Study.objects.filter(Q(patient__in=animals) | Q(patient__isnull=True, dicom_patient_id__in=others))
        .annotate(series_n=Count("series", distinct=True), instances_n=Count("series__instances"))
        .values_list("patient_id", "dicom_patient_id", "series_n", "instances_n")
    )
    for patient, header_id, series_n, instances_n in per_study:
        key = ("animal", patient) if patient is not None else ("headers", header_id)
        total = counts.setdefault(key, [0, 0, 0])
        total[0] += 1
        total[1] += series_n
        total[2] += instances_n
    for row in rows:
        key = (
            ("animal", row["patient_id"])
            if row["patient_id"] is not None
            else ("headers", row["dicom_patient_id"])
        )
        row["study_count"], row["series_count"], row["instance_count"] = counts.get(key, [0, 0, 0])


FIND = {Level.PATIENT: _patients_find, Level.STUDY: _studies_find, Level.SERIES: _series_find,
        Level.IMAGE: _instances_find}  # fmt: skip


def retrieve_ae_title() -> str:
    """Where the answers can be retrieved from: this node (Retrieve AE Title, PS3.4 C.4.1.1.3.2)."""
    return str(settings.DICOM_AE_TITLE)

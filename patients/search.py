"""The search index behind the patient search box: normalised words per owner and animal.

Each owner and animal is stored under the words a receptionist would type: names, phone
digits, microchip, patient ID, email, external ids. A query matches when every word of it is
the prefix of one of the record's words. Services call ``search_terms_refresh`` after a change.
"""

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection
from django.db.backends.utils import CursorWrapper
from django.db.models import F

from patients import names
from patients.models import Owner, Patient
from vetclinic.db import StartsWith

TERM_MAX = 64
_NOT_WORD = re.compile(r"[^0-9a-z]+")


def normalise(text: str | None) -> list[str]:
    """Lower case, accents dropped, split on anything that is not a letter or digit."""
    text = unicodedata.normalize("NFKD", text or "")
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    return [word[:TERM_MAX] for word in _NOT_WORD.split(text) if word]


def query_words(query: str | None) -> list[str]:
    """The words of a typed query; digit groups run together, as phone numbers are typed
    with spaces ("07700 900123") but indexed as one number."""
    words: list[str] = []
    for word in normalise(query):
        if word.isdigit() and words and words[-1].isdigit():
            words[-1] += word
        else:
            words.append(word)
    return words


# What the words and the worklist name key are made of; a change to anything else of an
# owner or an animal leaves them as they are (the services skip the rewrite then).
OWNER_FIELDS_SEARCHED = {"kind", "family_name", "given_name", "organisation_name", "phone", "mobile", "email"}
PATIENT_FIELDS_SEARCHED = {"name", "patient_id", "microchip"}


def _digits(text: str | None) -> str:
    return re.sub(r"\D", "", text or "")


def owner_words(owner: "Owner | _OwnerRow", external_values: Iterable[str]) -> list[str]:
    """The words an owner is found by: names, phone digits, email, the PMS's ids."""
    words = normalise(" ".join([owner.family_name, owner.given_name, owner.organisation_name]))
    words += [_digits(phone) for phone in owner.phones]  # type: ignore[misc]  # _OwnerRow borrows it
    words += normalise(owner.email)
    for value in external_values:
        words += normalise(value)
    return words


def patient_words(
    patient: "Patient | _PatientRow", alias_ids: Iterable[str | None], external_values: Iterable[str]
) -> list[str]:
    """The words an animal is found by, without its owners' (which are its words too)."""
    # Identifiers are split like typed queries are, so "PET-42" is found as "pet-42" or "pet 42".
    words = normalise(patient.name) + normalise(patient.patient_id) + normalise(patient.microchip)
    for alias_id in alias_ids:
        words += normalise(alias_id)
    for value in external_values:
        words += normalise(value)
    return words


def patient_terms(patient: Patient) -> set[str]:
    """Every word of an animal from its model instance (with ``aliases``, ``external_ids`` and
    ``ownerships__owner__external_ids`` prefetched): what ``search_terms_refresh`` stores."""
    words = patient_words(
        patient, [a.patient_id for a in patient.aliases.all()], [e.value for e in patient.external_ids.all()]
    )
    for ownership in patient.ownerships.all():
        words += owner_words(ownership.owner, [e.value for e in ownership.owner.external_ids.all()])
    return {w for w in words if w}


def dicom_name_key(patient: Patient) -> str:
    owner = patient.primary_owner
    return names.name_key(owner.dicom_family_name if owner else "", patient.name)


@dataclass
class _OwnerRow:
    kind: str
    family_name: str
    given_name: str
    organisation_name: str
    phone: str
    mobile: str
    email: str
    external_values: list[str]

    # The owner's own definitions, so that the words and name key are made as for the model (mypy
    # takes their self to be an Owner: the two places that read them here say so).
    Kind = Owner.Kind
    phones = Owner.phones
    dicom_family_name = Owner.dicom_family_name
    dicom_family_name_of = Owner.dicom_family_name_of


@dataclass
class _PatientRow:
    name: str
    patient_id: str
    microchip: str
    dicom_name_key: str
    alias_ids: list[str]
    external_values: list[str]
    owners: list[tuple[int, bool]]  # [(owner id, is primary)]


# One read for everything the words are made of: the animals asked for that are not merged
# (and, with ``owners_animals``, every animal of the owners asked for), their aliases, external
# ids and owners, and those owners' and the asked-for owners' external ids. Rows are
# (kind, patient, owner, text fields..., flag), typed in the first branch (PostgreSQL
# resolves a UNION's column types from it); placeholders {p} and {o} are the id lists.
_READ = """
WITH target AS (
    SELECT id FROM patients_patient WHERE merged_into_id IS NULL AND (id IN ({p}){with_owners})
), owner_target AS (
    SELECT owner_id AS id FROM patients_ownership WHERE patient_id IN (SELECT id FROM target)
    UNION SELECT id FROM patients_owner WHERE id IN ({o})
)
SELECT 'P', id, CAST(NULL AS BIGINT), name, patient_id, microchip, dicom_name_key, NULL, NULL, NULL,
       CAST(NULL AS BOOLEAN)
    FROM patients_patient WHERE id IN (SELECT id FROM target)
UNION ALL SELECT 'A', merged_into_id, NULL, patient_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL
    FROM patients_patient WHERE merged_into_id IN (SELECT id FROM target)
UNION ALL SELECT 'X', patient_id, NULL, value, NULL, NULL, NULL, NULL, NULL, NULL, NULL
    FROM patients_patientexternalid WHERE patient_id IN (SELECT id FROM target)
UNION ALL SELECT 'L', patient_id, owner_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, is_primary
    FROM patients_ownership WHERE patient_id IN (SELECT id FROM target)
UNION ALL SELECT 'O', NULL, id, kind, family_name, given_name, organisation_name, phone, mobile, email, NULL
    FROM patients_owner WHERE id IN (SELECT id FROM owner_target)
UNION ALL SELECT 'Y', NULL, owner_id, value, NULL, NULL, NULL, NULL, NULL, NULL, NULL
    FROM patients_ownerexternalid WHERE owner_id IN (SELECT id FROM owner_target)
"""
_WITH_OWNERS = " OR id IN (SELECT patient_id FROM patients_ownership WHERE owner_id IN ({o}))"
# Ids per statement: well under SQLite's limit of host parameters, and IN lists PostgreSQL
# plans quickly.
_CHUNK = 500


def _placeholders(ids: list[int]) -> str:
    return ", ".join(["%s"] * len(ids)) if ids else "NULL"


def _read(
    cursor: CursorWrapper, patient_ids: list[int], owner_ids: list[int], owners_animals: bool
) -> tuple[dict[int, _PatientRow], dict[int, _OwnerRow]]:
    """{patient id: _PatientRow}, {owner id: _OwnerRow} from one query."""
    sql = _READ.format(
        p=_placeholders(patient_ids), o=_placeholders(owner_ids),
        with_owners=_WITH_OWNERS.format(o=_placeholders(owner_ids)) if owners_animals and owner_ids else "",
    )  # fmt: skip
    params = [*patient_ids, *(owner_ids if owners_animals and owner_ids else ()), *owner_ids]
    cursor.execute(sql, params)
    patients: dict[int, _PatientRow] = {}
    owners: dict[int, _OwnerRow] = {}
    owner_ids_of: dict[int, list[tuple[int, bool]]] = {}
    aliases: dict[int, list[str]] = {}
    externals: dict[int, list[str]] = {}
    owner_externals: dict[int, list[str]] = {}
    for kind, patient, owner, a, b, c, d, e, f, g, flag in cursor.fetchall():
        if kind == "P":
            patients[patient] = _PatientRow(a, b, c, d, [], [], [])
        elif kind == "A":
            aliases.setdefault(patient, []).append(a)
        elif kind == "X":
            externals.setdefault(patient, []).append(a)
        elif kind == "L":
            owner_ids_of.setdefault(patient, []).append((owner, bool(flag)))
        elif kind == "O":
            owners[owner] = _OwnerRow(a, b, c, d, e, f, g, [])
        else:
            owner_externals.setdefault(owner, []).append(a)
    for pk, row in patients.items():
        row.alias_ids, row.external_values, row.owners = (
            aliases.get(pk, []),
            externals.get(pk, []),
            owner_ids_of.get(pk, []),
        )
    for pk, owner_row in owners.items():
        owner_row.external_values = owner_externals.get(pk, [])
    return patients, owners


def search_terms_refresh(
    *, patients: Iterable[Patient] = (), owners: Iterable[Owner] = (), owners_animals: bool = False
) -> None:
    """Rewrite the search words of these patients and owners (inside the caller's transaction),
    and the patients' worklist name key. With ``owners_animals``, every animal of these owners
    too (an owner's words are also its animals' words).

    One read, one delete, one insert (and an update when a name key changed): this runs on
    every change of a name, phone or id, from the UI, HL7 and REST alike."""
    patient_ids = list(dict.fromkeys(p.pk for p in patients))
    owner_ids = list(dict.fromkeys(o.pk for o in owners))
    keys: dict[int, str] = {}
    for start in range(0, max(len(patient_ids), len(owner_ids)), _CHUNK):
        keys.update(
            _refresh(patient_ids[start : start + _CHUNK], owner_ids[start : start + _CHUNK], owners_animals)
        )
    for patient in patients:  # the caller's objects say what the database now holds
        if patient.pk in keys:
            patient.dicom_name_key = keys[patient.pk]


def _refresh(patient_ids: list[int], owner_ids: list[int], owners_animals: bool) -> dict[int, str]:
    """One chunk's rewrite; returns {patient id: new name key} for the keys it changed."""
    with connection.cursor() as cursor:
        rows, owners = _read(cursor, patient_ids, owner_ids, owners_animals)
        terms: list[tuple[str, int | None, int | None]] = []
        renamed: dict[int, str] = {}  # {patient id: its new name key}
        owner_terms = {
            pk: {w for w in owner_words(owner, owner.external_values) if w} for pk, owner in owners.items()
        }
        for pk, row in rows.items():
            words = {w for w in patient_words(row, row.alias_ids, row.external_values) if w}
            for owner_pk, _ in row.owners:
                words |= owner_terms[owner_pk]
            terms += [(w, pk, None) for w in words]
            primary = next((owners[o] for o, is_primary in row.owners if is_primary), None)
            key = names.name_key(primary.dicom_family_name if primary else "", row.name)  # type: ignore[misc]  # borrowed
            if row.dicom_name_key != key:
                renamed[pk] = key
        terms += [(w, None, pk) for pk in owner_ids if pk in owner_terms for w in owner_terms[pk]]
        # Every animal read (an owner's included) and every one asked for: a merged one asked
        # for keeps no words.
        cleared = list(dict.fromkeys([*patient_ids, *rows]))
        which = f"patient_id IN ({_placeholders(cleared)}) OR owner_id IN ({_placeholders(owner_ids)})"
        if connection.vendor == "postgresql":
            # Two edits at once of animals that share an owner each delete the other's words
            # too; a DELETE locks rows in whatever order its plan meets them, so the two could
            # each wait for the other (PostgreSQL: "deadlock detected", the request a 500).
            # Locked in id order first, they queue behind one another instead. (SQLite has
            # one writer at a time.) The locked ids come as an array, computed once before the
            # delete (an InitPlan) and looked up by primary key: written as ``id IN (SELECT
            # ...)`` the planner may join the subquery to a scan of the whole table, which it
            # did before the table was first analysed (4 ms at 9,000 words, growing with it).
            which = (
                f"id = ANY(ARRAY(SELECT id FROM patients_searchterm WHERE {which} ORDER BY id FOR UPDATE))"
            )
        cursor.execute(f"DELETE FROM patients_searchterm WHERE {which}", [*cleared, *owner_ids])
        for start in range(0, len(terms), _CHUNK):
            part = terms[start : start + _CHUNK]
            cursor.execute(
                "INSERT INTO patients_searchterm (term, patient_id, owner_id) VALUES "
                + ", ".join(["(%s, %s, %s)"] * len(part)),
                [value for term in part for value in term],
            )
        for pk, key in renamed.items():
            cursor.execute("UPDATE patients_patient SET dicom_name_key = %s WHERE id = %s", [key, pk])
    return renamed


def term_prefix(word: str) -> StartsWith:
    """A condition on SearchTerm.term: it starts with ``word``, answered from the term index,
    with the word as the statement's only parameter (vetclinic/db.py compiles
    the search once for every word). Every term is made of the letters and digits
    ``normalise`` keeps, so it sorts below the range's bound when it starts with the word."""
    return StartsWith(F("term"), word)

"""The search index behind the patient search box: normalised words per owner and animal.

Each owner and animal is stored under the words a receptionist would type: names, phone
digits, microchip, patient ID, email, external ids. A query matches when every word of it is
the prefix of one of the record's words. Services call ``search_terms_refresh`` after a change.
"""
import re
import unicodedata

from django.db.models import F, Lookup, Prefetch, Q

from patients.models import Owner, Ownership, Patient, SearchTerm

TERM_MAX = 64
_NOT_WORD = re.compile(r"[^0-9a-z]+")


def normalise(text):
    """Lower case, accents dropped, split on anything that is not a letter or digit."""
    text = unicodedata.normalize("NFKD", text or "")
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    return [word[:TERM_MAX] for word in _NOT_WORD.split(text) if word]


def query_words(query):
    """The words of a typed query; digit groups run together, as phone numbers are typed
    with spaces ("07700 900123") but indexed as one number."""
    words = []
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


def _digits(text):
    return re.sub(r"\D", "", text or "")


def _owner_words(owner):
    words = normalise(" ".join([owner.family_name, owner.given_name, owner.organisation_name]))
    words += [_digits(phone) for phone in owner.phones]
    words += normalise(owner.email)
    for ext in owner.external_ids.all():
        words += normalise(ext.value)
    return words


def _patient_words(patient):
    # Identifiers are split like typed queries are, so "PET-42" is found as "pet-42" or "pet 42".
    words = normalise(patient.name) + normalise(patient.patient_id) + normalise(patient.microchip)
    for alias in patient.aliases.all():
        words += normalise(alias.patient_id)
    for ext in patient.external_ids.all():
        words += normalise(ext.value)
    for ownership in patient.ownerships.all():
        words += _owner_words(ownership.owner)
    return words


def dicom_name_key(patient):
    return patient.dicom_name.upper()[:130]


def search_terms_refresh(*, patients=(), owners=()):
    """Rewrite the search words of these patients and owners (inside the caller's transaction),
    and the patients' worklist name key."""
    patient_ids = [p.pk for p in patients]
    owner_ids = [o.pk for o in owners]
    SearchTerm.objects.filter(Q(patient_id__in=patient_ids) | Q(owner_id__in=owner_ids)).delete()
    rows, renamed, seen = [], [], {}
    # The owners through the ownerships (with them in one query): the words need the owners,
    # the name key needs which one is primary.
    ownerships = Prefetch("ownerships", queryset=Ownership.objects.select_related("owner"))
    for patient in Patient.objects.filter(pk__in=patient_ids, merged_into__isnull=True).prefetch_related(
        "aliases", "external_ids", ownerships, "ownerships__owner__external_ids"
    ):
        rows += [SearchTerm(term=w, patient=patient) for w in set(_patient_words(patient)) if w]
        if patient.dicom_name_key != dicom_name_key(patient):
            patient.dicom_name_key = dicom_name_key(patient)
            renamed.append(patient)
        seen.update((o.owner_id, o.owner) for o in patient.ownerships.all())
    Patient.objects.bulk_update(renamed, ["dicom_name_key"], batch_size=1000)
    # Owners of those patients were read with them (external ids and all); only others are read.
    others = [pk for pk in owner_ids if pk not in seen]
    others = Owner.objects.filter(pk__in=others).prefetch_related("external_ids") if others else []
    for owner in [seen[pk] for pk in dict.fromkeys(owner_ids) if pk in seen] + list(others):
        rows += [SearchTerm(term=w, owner=owner) for w in set(_owner_words(owner)) if w]
    SearchTerm.objects.bulk_create(rows, batch_size=1000)


class _StartsWith(Lookup):
    """The column starts with the right-hand side, as a range the database answers from an
    index: ``term >= word AND term < word || U+10FFFF`` (every term is made of the letters and
    digits ``normalise`` keeps, so it sorts below that bound when it starts with the word).
    The word is the statement's only parameter, as typed, so the statement's text is the same
    for every word and a prepared statement can be planned once for all of them
    (integrations/api/statements.py). Django's ``startswith`` sends ``'word%'`` instead, and a
    LIKE whose pattern is a parameter is only an index range once the value is known.

    PostgreSQL compares with the pattern operators ``~>=~`` / ``~<~`` (byte-wise), which the
    varchar_pattern_ops indexes Django adds for indexed CharFields (and SearchTerm's own) serve;
    SQLite compares byte-wise anyway (BINARY collation)."""

    lookup_name = "starts_with_range"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs} >= %s AND {lhs} < (%s || char(1114111))", [*lhs_params, self.rhs, *lhs_params, self.rhs]

    def as_postgresql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        sql = f"{lhs}::text ~>=~ %s AND {lhs}::text ~<~ (%s::text || chr(1114111))"
        return sql, [*lhs_params, self.rhs, *lhs_params, self.rhs]


def term_prefix(word):
    """A condition on SearchTerm.term: it starts with ``word``, answered from the term index."""
    return _StartsWith(F("term"), word)

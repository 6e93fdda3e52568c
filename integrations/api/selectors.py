"""What the REST lists read: each list's page query, compiled once per shape (vetclinic/db.py)
through ``list_pages``, narrowed by the list's FilterSet (filters.py). The views only clean the
request's parameters with that FilterSet and pick a list's pages.
"""

from typing import Any

from django.db.models import F, QuerySet

from imaging.models import Study
from integrations.api.filters import PatientFilter, StudyFilter
from integrations.api.pagination import Page, list_pages
from integrations.api.rows import Row, patient_rows, study_rows
from patients.models import Patient
from patients.selectors import patient_ids_matching
from vetclinic.db import CompiledQuery, IdIn

# --- animals ----------------------------------------------------------------------------------


def patients_queryset() -> QuerySet[Patient]:
    """Living animals (a merged record lives on as an alias of the one it was merged into)."""
    return Patient.objects.filter(merged_into__isnull=True)


def _patient_page(filters: dict[str, Any], page: Page) -> QuerySet[Patient, Row]:
    return PatientFilter.narrow(patient_rows(patients_queryset()), filters)


def _patient_search_page(filters: dict[str, Any], page: Page) -> QuerySet[Patient, Row]:
    """A search whose every word is specific: its matches' ids first, then the ids of the
    page's animals among them, then those animals' rows. With ``id IN (<matches>)`` PostgreSQL
    guesses how many animals a word matches from a sample of the words; for some rare family
    names it guessed thousands where there were a few dozen and read every word's row in
    patient order (~130 ms, against ~0.3 ms now), and for a pet name it walked the animals by
    id until a page of them matched (~2.5 ms, ~1 ms now). (IdIn with a subquery: ``= ANY(ARRAY(...))``.)"""
    matches = patient_ids_matching(words=filters["search"])
    others = {name: value for name, value in filters.items() if name != "search"}
    living = PatientFilter.narrow(patients_queryset(), others)
    page_ids = page.of(living.filter(IdIn(F("pk"), matches)), offset=False).values("pk")
    return patient_rows(patients_queryset()).filter(IdIn(F("pk"), page_ids))


# A word shorter than this matches a large share of the animals ("a": 130,000 words at 100,000
# animals), where reading every match first costs more (~35 ms) than walking the animals by id
# until a page of them matched (~0.3 ms), which PostgreSQL does for _patient_page.
SPECIFIC_WORD = 3


# The list's statements, prepared and planned once for every value. A search with specific
# words is too: its matches' ids are read first whatever the words, so one plan suits every
# word (PostgreSQL, left to choose, planned it for its words every time, 1,190 plans for 1,190
# searches, ~0.45 ms each: more than running it). Not the IN form for short words: planned
# once for every word, it would walk all the animals for a rare one.
PATIENT_PAGES = list_pages(_patient_page)
SEARCH_PAGES = list_pages(_patient_search_page)
BROAD_SEARCH_PAGES = list_pages(_patient_page, prepare=False)


def patient_pages(*, words: tuple[str, ...] | None = None) -> CompiledQuery:
    """The pages a patient list with these search words reads."""
    if not words:
        return PATIENT_PAGES
    return SEARCH_PAGES if min(len(word) for word in words) >= SPECIFIC_WORD else BROAD_SEARCH_PAGES


# --- studies ----------------------------------------------------------------------------------


def _study_page(filters: dict[str, Any], page: Page) -> QuerySet[Study, Row]:
    return StudyFilter.narrow(study_rows(Study.objects.all()), filters)


STUDY_PAGES = list_pages(_study_page)

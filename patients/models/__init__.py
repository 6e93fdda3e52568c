"""The clinic's record: owners, animals, visits, and the species/breed vocabulary, one module
per idea: vocabulary.py (species, breeds, the crosswalk), owners.py, patients.py (the animals,
their owners and weights), visits.py, search_terms.py.

Django looks for an app's models in its ``models`` module and the migrations name them as
``patients.<Model>``, so they are all importable from here."""

from patients.models.owners import ExternalId, Owner, OwnerExternalId
from patients.models.patients import (
    NEWEST_WEIGHT_FIRST,
    Ownership,
    Patient,
    PatientExternalId,
    WeightRecord,
)
from patients.models.search_terms import SearchTerm
from patients.models.visits import Visit, staff_name
from patients.models.vocabulary import Breed, CodeMapping, Species, UnmappedCode

__all__ = [
    "NEWEST_WEIGHT_FIRST", "Breed", "CodeMapping", "ExternalId", "Owner", "OwnerExternalId", "Ownership",
    "Patient", "PatientExternalId", "SearchTerm", "Species", "UnmappedCode", "Visit", "WeightRecord",
    "staff_name",
]  # fmt: skip

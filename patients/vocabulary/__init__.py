"""The species and breed vocabulary that ships with VetPACS.

species.csv: DICOM PS3.16 CID 7454 (SNOMED CT), a few species with SNOMED CT codes from HL7's
animal-species value set, and common exotics under VetPACS's private scheme 99VETPACS until a
verified SNOMED CT code is mapped (the `source` column says which).
breeds.csv: every breed of DICOM PS3.16 CID 7480 (mixed breeds: CID 7486) for the species we
ship, as published in pydicom 3.0.2's copy of the standard; `name` is the meaning without the
trailing "dog breed" / "horse breed".
"""

import csv
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent


def rows(name: str) -> list[dict[str, str]]:
    with open(HERE / name, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# Any: the models as a migration has them (apps.get_model), not patients.models' classes.
def vocabulary_load(Species: Any, Breed: Any) -> None:
    """Insert what is missing; never overwrite a clinic's edits (idempotent)."""
    species_by_key = {}
    for row in rows("species.csv"):
        species, _ = Species.objects.get_or_create(
            scheme=row["scheme"],
            code=row["code"],
            defaults={"meaning": row["meaning"], "name": row["name"], "group": row["group"]},
        )
        species_by_key[row["key"]] = species
    existing = set(Breed.objects.values_list("scheme", "code"))
    Breed.objects.bulk_create(
        [
            Breed(
                species=species_by_key[row["species"]],
                scheme="SCT",
                code=row["code"],
                meaning=row["meaning"][:64],
                name=row["name"][:64],
                is_mixed=row["mixed"] == "yes",
            )
            for row in rows("breeds.csv")
            if ("SCT", row["code"]) not in existing
        ],
        batch_size=500,
    )

"""The procedure catalog that ships with VetPACS: common veterinary imaging exams.

procedures.csv: one exam per row. ``species`` lists the species keys of
patients/vocabulary/species.csv it applies to (empty: any species). The Scheduled Protocol Code
(PS3.3 C.4.10, Scheduled Protocol Code Sequence) is the procedure's own code under VetPACS's
private coding scheme 99VETPACS (PS3.16 8.2), as no standard code set covers veterinary exams.
"""

import csv
from pathlib import Path
from typing import Any

from patients.vocabulary import rows as vocabulary_rows

HERE = Path(__file__).parent


# Any: the models as a migration has them (apps.get_model), not imaging.models' classes.
def procedures_load(Procedure: Any, Species: Any) -> None:
    """Insert the catalog's procedures that are missing; never overwrite a clinic's edits."""
    species_codes = {row["key"]: (row["scheme"], row["code"]) for row in vocabulary_rows("species.csv")}
    with open(HERE / "procedures.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            procedure, created = Procedure.objects.get_or_create(
                code=row["code"],
                defaults={
                    "name": row["name"],
                    "modality_type": row["modality_type"],
                    "body_part": row["body_part"],
                    "duration_minutes": int(row["duration_minutes"]),
                    "protocol_code": row["code"],
                },
            )
            if created and row["species"]:
                for key in row["species"].split(";"):
                    scheme, code = species_codes[key]
                    procedure.species.add(Species.objects.get(scheme=scheme, code=code))

"""The report templates a new clinic starts with: report_templates.toml, loaded by migration
0013 (the clinic edits them in the admin afterwards). Each reads as a normal study, in a
veterinary radiologist's terms, with ___ where a measurement or a side goes.

References quoted in the texts: vertebral heart score, Buchanan & Bücheler 1995 (JAVMA
206:194); vertebral left atrial size, Malcolm et al. 2018 (JVIM 32:1520); the Norberg angle
and the FCI hip scheme; the tibial plateau angle, Slocum & Slocum 1993; elbow grading, the
International Elbow Working Group (IEWG); the small intestine to L5 ratio, Graham et al. 1998."""

import tomllib
from pathlib import Path
from typing import Any

from patients.vocabulary import rows as vocabulary_rows

SOURCE = Path(__file__).with_name("report_templates.toml")


def templates_read() -> list[dict[str, str]]:
    with open(SOURCE, "rb") as handle:
        return tomllib.load(handle)["template"]


# Any: the models as a migration has them (apps.get_model), not imaging.models' classes.
def templates_load(ReportTemplate: Any, Procedure: Any, Species: Any) -> None:  # noqa: N803
    """Insert the templates that are missing, by name; never overwrite a clinic's edits."""
    species_codes = {row["key"]: (row["scheme"], row["code"]) for row in vocabulary_rows("species.csv")}
    for row in templates_read():
        species = None
        if row["species"]:
            scheme, code = species_codes[row["species"]]
            species = Species.objects.filter(scheme=scheme, code=code).first()
        ReportTemplate.objects.get_or_create(
            name=row["name"],
            defaults={
                "procedure": Procedure.objects.filter(code=row["procedure"]).first()
                if row["procedure"]
                else None,
                "modality_type": row["modality_type"],
                "body_part": row["body_part"],
                "species": species,
                "findings": row["findings"],
                "conclusion": row["conclusion"],
            },
        )

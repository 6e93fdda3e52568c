"""Report templates (the viewer's report panel) and the ones a clinic starts with
(imaging/reports/template_texts.py)."""

import django.db.models.deletion
from django.db import migrations, models

from imaging.reports.template_texts import templates_load


def load(apps, schema_editor):
    templates_load(
        apps.get_model("imaging", "ReportTemplate"),
        apps.get_model("imaging", "Procedure"),
        apps.get_model("patients", "Species"),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("imaging", "0014_annotations"),
        ("patients", "0006_hl7_unmapped_codes"),
    ]

    operations = [
        migrations.CreateModel(
            name="ReportTemplate",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=80, unique=True)),
                (
                    "modality_type",
                    models.CharField(
                        blank=True, help_text="DICOM Modality: DX, CR, US, CT, MR…", max_length=16
                    ),
                ),
                (
                    "body_part",
                    models.CharField(
                        blank=True,
                        help_text="DICOM Body Part Examined (CS): CHEST, ABDOMEN, PELVIS, KNEE, HEAD…",
                        max_length=16,
                    ),
                ),
                (
                    "findings",
                    models.TextField(
                        help_text="The findings as a normal study reads; the vet edits what differs."
                    ),
                ),
                ("conclusion", models.TextField(blank=True)),
                ("active", models.BooleanField(default=True)),
                (
                    "procedure",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="report_templates",
                        to="imaging.procedure",
                    ),
                ),
                (
                    "species",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="report_templates",
                        to="patients.species",
                    ),
                ),
            ],
            options={
                "ordering": ["name"],
            },
        ),
        migrations.RunPython(load, migrations.RunPython.noop),
    ]

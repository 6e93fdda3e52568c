"""Hanging protocols (imaging/models/hanging.py), a few seeded (imaging/studies/hanging_seeds.py:
thorax three views and abdomen two views for DX and CR, CT in one viewport), and the admin's
permissions on them (vetclinic/roles.py)."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

from imaging.studies.hanging_seeds import hanging_protocols_load
from vetclinic.roles import roles_sync


def load(apps, schema_editor):
    hanging_protocols_load(
        apps.get_model("imaging", "HangingProtocol"), apps.get_model("imaging", "HangingViewport")
    )
    roles_sync(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("imaging", "0012_reading_list_indexes"),
        ("patients", "0006_hl7_unmapped_codes"),
    ]

    operations = [
        migrations.CreateModel(
            name="HangingProtocol",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=64)),
                (
                    "modality",
                    models.CharField(
                        help_text="DICOM Modality (0008,0060): DX, CR, CT, US, MR…", max_length=16
                    ),
                ),
                (
                    "body_part",
                    models.CharField(
                        blank=True,
                        help_text=(
                            "Body Part Examined (0018,0015), any of these, comma-separated (e.g. CHEST, THORAX); "
                            "empty: any body part"
                        ),
                        max_length=128,
                    ),
                ),
                (
                    "layout",
                    models.CharField(
                        choices=[
                            ("1x1", "1×1: one viewport"),
                            ("1x2", "1×2: two side by side"),
                            ("2x2", "2×2: four"),
                        ],
                        default="1x1",
                        max_length=3,
                    ),
                ),
                ("active", models.BooleanField(default=True)),
                ("created", models.DateTimeField(default=django.utils.timezone.now)),
                ("updated", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "species",
                    models.ForeignKey(
                        blank=True,
                        help_text="Empty: any species",
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="patients.species",
                    ),
                ),
            ],
            options={
                "ordering": ["modality", "name"],
            },
        ),
        migrations.CreateModel(
            name="HangingViewport",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "position",
                    models.PositiveSmallIntegerField(
                        help_text="1 top left, 2 to its right, 3 below the first…"
                    ),
                ),
                (
                    "label",
                    models.CharField(
                        blank=True, help_text="Shown on the viewport, e.g. Right lateral", max_length=64
                    ),
                ),
                (
                    "view_positions",
                    models.CharField(
                        blank=True,
                        help_text="View Position (0018,5101) values, comma-separated, e.g. RL, RLD (DICOM: AP, PA, LL, RL…)",
                        max_length=64,
                        verbose_name="view positions",
                    ),
                ),
                (
                    "keywords",
                    models.CharField(
                        blank=True,
                        help_text=(
                            "Words or phrases, comma-separated, found whole in the series description or view, "
                            "e.g. right lateral, R lat, RL"
                        ),
                        max_length=255,
                    ),
                ),
                (
                    "protocol",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="viewports",
                        to="imaging.hangingprotocol",
                    ),
                ),
            ],
            options={
                "ordering": ["protocol", "position"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("protocol", "position"), name="hanging_viewport_position_unique"
                    )
                ],
            },
        ),
        migrations.RunPython(load, migrations.RunPython.noop),
    ]

"""Query/Retrieve (imaging/archive/query.py): what the headers of a study said about the animal
beyond name, ID and species, the Study ID, the headers' Patient's Name as it is matched, and the
indexes a study search needs."""

import django.db.models.functions.text
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("imaging", "0009_storage_commitment"),
    ]

    operations = [
        migrations.AddField(
            model_name="study", name="dicom_patient_sex", field=models.CharField(blank=True, max_length=16)
        ),
        migrations.AddField(
            model_name="study", name="dicom_breed", field=models.CharField(blank=True, max_length=64)
        ),
        migrations.AddField(
            model_name="study", name="dicom_sex_neutered", field=models.CharField(blank=True, max_length=16)
        ),
        migrations.AddField(
            model_name="study",
            name="dicom_responsible_person",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AddField(
            model_name="study",
            name="dicom_responsible_person_role",
            field=models.CharField(blank=True, max_length=16),
        ),
        migrations.AddField(
            model_name="study",
            name="dicom_name_key",
            field=models.GeneratedField(
                db_persist=True,
                expression=django.db.models.functions.text.Upper(
                    models.Func(models.F("dicom_patient_name"), template="RTRIM(%(expressions)s, '^')")
                ),
                output_field=models.CharField(max_length=64),
            ),
        ),
        migrations.AddField(
            model_name="study",
            name="study_id",
            field=models.CharField(blank=True, max_length=16, verbose_name="study ID"),
        ),
        migrations.AddIndex(
            model_name="study",
            index=models.Index(
                condition=models.Q(("patient__isnull", True)),
                fields=["dicom_name_key"],
                name="study_unlinked_name",
                opclasses=["varchar_pattern_ops"],
            ),
        ),
        migrations.AddIndex(
            model_name="study",
            index=models.Index(
                condition=models.Q(("patient__isnull", True)),
                fields=["dicom_patient_id"],
                name="study_unlinked_id",
            ),
        ),
        migrations.AddIndex(
            model_name="series",
            index=models.Index(fields=["modality", "study"], name="series_modality_study"),
        ),
    ]

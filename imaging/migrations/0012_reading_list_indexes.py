"""The reading list's indexes: the studies a station sent (an EXISTS on the series), and the
referring vet by a prefix of the name in capitals (vetclinic/db.py StartsWith compares with the
pattern operators, hence text_pattern_ops)."""

import django.contrib.postgres.indexes
import django.db.models.functions.text
from django.db import migrations, models

REFERRING_INDEX = {
    "postgresql": 'CREATE INDEX "study_referring_key" ON "imaging_study" '
    '((UPPER("referring_physician"::text)) text_pattern_ops)',
    "sqlite": 'CREATE INDEX "study_referring_key" ON "imaging_study" (UPPER("referring_physician"))',
}


def referring_index_create(apps, schema_editor):
    schema_editor.execute(REFERRING_INDEX[schema_editor.connection.vendor])


def referring_index_drop(apps, schema_editor):
    schema_editor.execute('DROP INDEX "study_referring_key"')


class Migration(migrations.Migration):
    dependencies = [
        ("imaging", "0011_modality_tls"),
        ("patients", "0006_hl7_unmapped_codes"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="series",
            index=models.Index(fields=["received_from", "study"], name="series_sender_study"),
        ),
        # Django 5.2 writes an OpClass around a function inside the expression's parentheses
        # ("((UPPER(x) text_pattern_ops))"), which PostgreSQL rejects; the statement is written
        # here as PostgreSQL wants it, and the state is the model's index. SQLite (the embedded
        # default of `make run`) has no operator classes: it gets the index on the name alone.
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(referring_index_create, referring_index_drop)],
            state_operations=[
                migrations.AddIndex(
                    model_name="study",
                    index=models.Index(
                        django.contrib.postgres.indexes.OpClass(
                            django.db.models.functions.text.Upper("referring_physician"),
                            name="text_pattern_ops",
                        ),
                        name="study_referring_key",
                    ),
                ),
            ],
        ),
    ]

import django.db.models.deletion
from django.db import migrations, models


def document_lz4(apps, schema_editor):
    """The kept documents TOAST-compressed with lz4 where PostgreSQL has it (14+, built with it):
    a 500-instance series' documents (5.7 MB of JSON) came out of the table in 13 ms instead of
    41 ms with the default pglz (imaging/archive/metadata.py reads them on every /metadata)."""
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)"
        )
        if cursor.fetchone():
            cursor.execute("ALTER TABLE imaging_instancemetadata ALTER COLUMN document SET COMPRESSION lz4")


class Migration(migrations.Migration):
    dependencies = [
        ("imaging", "0007_modality_capabilities"),
    ]

    operations = [
        migrations.CreateModel(
            name="InstanceMetadata",
            fields=[
                (
                    "instance",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="metadata",
                        serialize=False,
                        to="imaging.instance",
                    ),
                ),
                ("storage_key", models.CharField(max_length=255)),
                ("document", models.TextField()),
            ],
            options={
                "verbose_name_plural": "instance metadata",
            },
        ),
        migrations.RunPython(document_lz4, migrations.RunPython.noop),
    ]

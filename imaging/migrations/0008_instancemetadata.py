import django.db.models.deletion
from django.db import migrations, models


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
    ]

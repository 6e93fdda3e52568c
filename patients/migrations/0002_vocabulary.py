from django.db import migrations

from patients.vocabulary import vocabulary_load


def load(apps, schema_editor):
    vocabulary_load(apps.get_model("patients", "Species"), apps.get_model("patients", "Breed"))


class Migration(migrations.Migration):
    dependencies = [("patients", "0001_initial")]
    operations = [migrations.RunPython(load, migrations.RunPython.noop)]

from django.db import migrations

from vetclinic.roles import roles_sync


def sync(apps, schema_editor):
    roles_sync(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("imaging", "0004_procedure_catalog"),
        ("patients", "0003_staff_groups"),
    ]
    operations = [migrations.RunPython(sync, migrations.RunPython.noop)]

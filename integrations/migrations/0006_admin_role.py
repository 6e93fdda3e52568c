from django.db import migrations

from vetclinic.roles import roles_sync


def sync(apps, schema_editor):
    roles_sync(apps)


class Migration(migrations.Migration):
    dependencies = [("integrations", "0005_idempotency_keys"), ("imaging", "0005_order_roles")]
    operations = [migrations.RunPython(sync, migrations.RunPython.noop)]

from django.db import migrations

from imaging.orders.catalog import procedures_load


def load(apps, schema_editor):
    procedures_load(apps.get_model("imaging", "Procedure"), apps.get_model("patients", "Species"))


class Migration(migrations.Migration):
    dependencies = [
        ("imaging", "0003_imagingorder_study_order_orderstatuschange_and_more"),
        ("patients", "0002_vocabulary"),
    ]
    operations = [migrations.RunPython(load, migrations.RunPython.noop)]

"""A registered node may be connected to over DICOM TLS (C-MOVE, Storage Commitment reports),
its certificate checked against its own authorities and, unless turned off, its host name."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("imaging", "0010_study_query_keys"),
    ]

    operations = [
        migrations.AddField(
            model_name="modality",
            name="tls",
            field=models.BooleanField(
                default=False,
                help_text="C-MOVE and Storage Commitment reports to it go over TLS",
                verbose_name="use TLS",
            ),
        ),
        migrations.AddField(
            model_name="modality",
            name="tls_ca_certificates",
            field=models.TextField(
                blank=True,
                help_text=(
                    "PEM certificates of the authorities that sign its certificate (or its own certificate); "
                    "empty: the listener's DICOM_TLS_CA, else the system's authorities"
                ),
                verbose_name="TLS authorities",
            ),
        ),
        migrations.AddField(
            model_name="modality",
            name="tls_check_hostname",
            field=models.BooleanField(
                default=True,
                help_text="Its certificate must name the host above (turn off for a device whose certificate does not)",
                verbose_name="TLS: check its host name",
            ),
        ),
    ]

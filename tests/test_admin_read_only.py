"""Records that services write (and audit) are read-only in the admin, even for a superuser:
one ReadOnlyAdmin (vetclinic/audit/admin.py) says so for all of them."""

import pytest
from django.contrib.auth.models import User
from django.test import Client

READ_ONLY = ["audit/auditentry", "patients/patient", "patients/owner", "integrations/hl7message",
             "integrations/webhookdelivery", "imaging/study", "imaging/storagecommitment"]  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize("model", READ_ONLY)
def test_a_superuser_cannot_add_records_that_services_write(model):
    admin = User.objects.create_superuser("boss", password="x-boss-password-1")
    client = Client()
    client.force_login(admin)
    assert client.get(f"/admin/{model}/").status_code == 200
    assert client.get(f"/admin/{model}/add/").status_code == 403

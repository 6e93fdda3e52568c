"""vetclinic/audit/services.py audit_read: a query's audit entry, written as audit_record writes
it, in one statement whose own commit does not wait for its WAL flush, and within a caller's
transaction as part of it."""

import pytest
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction

from imaging.models import Study
from vetclinic.audit.models import AuditEntry, Channel
from vetclinic.audit.services import Actor, audit_read, audit_record

pytestmark = pytest.mark.django_db(transaction=True)

FIELDS = ("channel", "user_id", "actor", "action", "object_type_id", "object_id", "object_repr", "changes")


def test_a_read_is_audited_as_audit_record_audits_it_and_the_connection_stays_synchronous():
    user = User.objects.create_user("reader")
    studies = ContentType.objects.get_for_model(Study)
    actor = Actor.for_user(user, channel=Channel.API)
    changes = {"level": [None, "STUDY"], "keys": [None, "PatientName=O'BRIEN*"], "answers": [None, 3]}
    audit_read(actor=actor, instance=studies, action="query", changes=changes)
    recorded = audit_record(actor=actor, instance=studies, action="query", changes=changes)
    read = AuditEntry.objects.exclude(pk=recorded.pk).get()
    recorded.refresh_from_db()
    assert [getattr(read, f) for f in FIELDS] == [getattr(recorded, f) for f in FIELDS]
    assert read.at <= recorded.at
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # set_config(..., true) lasted only its own statement
            cursor.execute("SHOW synchronous_commit")
            assert cursor.fetchone()[0] == "on"


def test_within_a_transaction_the_entry_is_part_of_it():
    studies = ContentType.objects.get_for_model(Study)
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_read(actor=Actor.system("tester"), instance=studies, action="query")
        assert AuditEntry.objects.filter(actor="tester").exists()
        raise RuntimeError("rolled back")
    assert not AuditEntry.objects.filter(actor="tester").exists()

"""Rebuild the patient search index, spread over the Celery workers in chunks.

For after a bulk import that bypassed the services, or an upgrade that changes how words are
normalised. ``--now`` rebuilds in this process instead.
"""

from django.core.management.base import BaseCommand
from django.db import transaction

from patients.models import Owner, Patient
from patients.tasks import search_terms_rebuild


def _chunks(ids, size):
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


class Command(BaseCommand):
    help = "Rebuild the search words of every owner and patient (queued to Celery)."

    def add_arguments(self, parser):
        parser.add_argument("--chunk", type=int, default=500)
        parser.add_argument("--now", action="store_true", help="Rebuild here instead of queueing.")

    def handle(self, *args, chunk, now, **options):
        patient_ids = list(Patient.objects.filter(merged_into__isnull=True).values_list("pk", flat=True))
        owner_ids = list(Owner.objects.values_list("pk", flat=True))
        jobs = [{"patient_ids": ids} for ids in _chunks(patient_ids, chunk)]
        jobs += [{"owner_ids": ids} for ids in _chunks(owner_ids, chunk)]
        for job in jobs:
            if now:
                search_terms_rebuild(**job)
            else:
                transaction.on_commit(lambda job=job: search_terms_rebuild.delay(**job))
        verb = "rebuilt" if now else "queued"
        self.stdout.write(
            f"{len(patient_ids)} patients and {len(owner_ids)} owners {verb} in {len(jobs)} chunks."
        )

"""Index every stored DICOM object the index lacks (after an outage, a restore, a lost queue).

Safe to run at any time: indexing is idempotent on the SOP Instance UID.
"""

from django.core.management.base import BaseCommand

from imaging.ingest.index import storage_sweep


class Command(BaseCommand):
    help = "Index every stored DICOM object that the index lacks."

    def add_arguments(self, parser):
        parser.add_argument(
            "--days", type=int, default=None, help="Only objects received in the last N days."
        )

    def handle(self, *args, days, **options):
        count = storage_sweep(days=days, min_age_seconds=0)
        self.stdout.write(f"{count} stored objects indexed.")

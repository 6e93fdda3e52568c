"""Index every stored DICOM object the index lacks (after an outage, a restore, a lost queue);
with ``--metadata``, also compute the WADO-RS metadata of every indexed instance that has none
or whose kept document describes an older object (instances indexed before it was kept).

Safe to run at any time: indexing is idempotent on the SOP Instance UID, and metadata already
kept for an instance's current object is left as it is.
"""

from django.core.management.base import BaseCommand

from imaging.archive.metadata import metadata_backfill
from imaging.ingest.index import storage_sweep


class Command(BaseCommand):
    help = "Index every stored DICOM object that the index lacks (and, with --metadata, keep its metadata)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--days", type=int, default=None, help="Only objects received in the last N days."
        )
        parser.add_argument(
            "--metadata",
            action="store_true",
            help="Also compute the WADO-RS metadata of indexed instances that have none.",
        )

    def handle(self, *args, days, metadata, **options):
        count = storage_sweep(days=days, min_age_seconds=0)
        self.stdout.write(f"{count} stored objects indexed.")
        if metadata:
            kept = metadata_backfill()
            self.stdout.write(f"Metadata computed for {kept} instances.")

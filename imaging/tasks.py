"""Where Celery finds imaging's tasks: its autodiscovery imports each app's tasks.py. The tasks
live with their feature (imaging/ingest/tasks.py, imaging/reconcile/tasks.py) and keep their
registered names, imaging.tasks.<name>, which are also their names here."""

from imaging.archive.tasks import commitment_report_task, commitments_sweep, metadata_keep_task
from imaging.ingest.tasks import instances_ingest, storage_sweep, thumbnail_render
from imaging.reconcile.tasks import study_headers_rewrite_task

__all__ = [
    "commitment_report_task", "commitments_sweep", "instances_ingest", "metadata_keep_task", "storage_sweep",
    "study_headers_rewrite_task", "thumbnail_render",
]  # fmt: skip

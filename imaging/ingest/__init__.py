"""Ingest: what the modalities send, from the C-STORE to a study linked to its animal.

receive.py    receiving an object (C-STORE today): check, keep durably, queue for indexing; no database
queueing.py   the indexing messages as one Celery task per batch of an association; a broker that is
              down never fails a stored object
storage.py    durable object storage ("success means durable": fsync, O_EXCL, keys never reused)
index.py      the worker's side: index stored objects (idempotent); the sweep of what the
              queue missed (beat, ``manage.py reindex``)
linking.py    which animal (and order) a new study belongs to: accession number, Study
              Instance UID, Patient ID; else the reconciliation queue (imaging/reconcile/)
thumbnails.py a series' middle image as a small PNG
tasks.py      the Celery tasks: index what arrived, the periodic sweep, thumbnails

The DICOM side (the listener, the record <-> data set code) is imaging/dicom/.
"""

"""Ingest: what the modalities send, from the C-STORE to a study linked to its animal.

imaging/services.py (to move here)   receive -> durable storage -> queue; index; the sweep
linking.py    which animal (and order) a new study belongs to: accession number, Study
              Instance UID, Patient ID; else the reconciliation queue (imaging/reconcile/)
thumbnails.py a series' middle image as a small PNG
tasks.py      the Celery tasks: index what arrived, the periodic sweep, thumbnails
"""

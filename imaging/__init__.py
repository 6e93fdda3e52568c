"""The imaging app, one package per feature; each says in its __init__ what lives there.

ingest/      receive -> durable storage -> index -> link; the sweep; thumbnails
orders/      the procedure catalog, imaging orders, the worklist's reads, MPPS, order events
reconcile/   unmatched studies, suggestions, moving and splitting studies, the header rewrite
reports/     report drafts, signing, amendments
studies/     the study page and the reads of the image index it shares
dicom/       the DICOM node
models/      every feature's records (Django finds them here; see models/__init__.py)
templatetags/, management/commands/   where Django looks for them; the commands are thin
urls.py      includes each feature's urls.py; tasks.py: where Celery finds the tasks
"""

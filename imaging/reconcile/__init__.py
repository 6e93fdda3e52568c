"""Reconciliation: studies no linker could place, and studies staff move between animals.

services.py   study_link_manual, series_split, and the header rewrite that makes the stored
              objects agree with the record afterwards (the originals kept as versions)
selectors.py  the queue of unmatched studies and the animals each most likely shows
forms.py, views.py, urls.py   the queue page and the link / split forms of the study page
tasks.py      the header rewrite, run by the Celery worker

Linking a newly received study automatically is imaging/ingest/ (linking.py).
"""

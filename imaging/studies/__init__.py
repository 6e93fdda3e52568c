"""The study page: one study's series, thumbnails, earlier versions, report and history.

selectors.py  reads of the image index the pages share (the animal's studies, one study's series)
views.py      the study page and series thumbnails; the report form on it posts to
              imaging/reports/, its link and split forms to imaging/reconcile/
urls.py

The models (Study, Series, Instance, Modality) are in imaging/models/studies.py; how studies
arrive and are indexed is imaging/ingest/.
"""

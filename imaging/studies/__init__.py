"""The study page: one study's series, thumbnails, earlier versions, report and history.

selectors.py  reads of the image index the pages share (the animal's studies, one study's series)
views.py      the study page and series thumbnails; the report form on it posts to
              imaging/reports/, its link and split forms to imaging/reconcile/
urls.py
priors.py       the animal's other studies (its record and merged aliases) for comparing
hanging.py      hanging protocols: which fits a study, which series goes in which viewport
                (hanging_seeds.py: the protocols a new installation starts with)
series_views.py a series' view and body part, read from its first image's kept metadata
compare_views.py the viewer's JSON for both

The models (Study, Series, Instance, Modality) are in imaging/models/studies.py; how studies
arrive and are indexed is imaging/ingest/.
"""

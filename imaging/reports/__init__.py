"""Reports: the vet's written report on a study, drafted, signed and amended.

services.py   report_save, report_finalize, report_amend (the web UI and REST call the same)
forms.py      the report form on the study page
views.py      its POST; the page itself is imaging/studies/views.py
urls.py

The model is in imaging/models/reports.py; signing tells the PMS through imaging/orders/events.py.
"""

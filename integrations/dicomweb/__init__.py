"""DICOMweb (PS3.18) under ``/dicomweb``: a thin adapter over the archive's services
(imaging/archive/), as the DICOM listener is one over the same services.

- ``base.py``: what every DICOMweb view shares: who may call (the staff session or an API key
  with ``studies:read`` / ``studies:write``, the REST API's own authentication and scopes), the
  error shape (the REST API's JSON error body), ``application/dicom+json``.
- ``qido.py``: QIDO-RS, search (PS3.18 10.6).
- ``wado.py``: WADO-RS, retrieve: instances, metadata, frames, bulk data (PS3.18 10.4).
- ``rendered.py``: WADO-RS rendered and thumbnail resources (PS3.18 10.4.1.1.3, 10.4.1.1.4).
- ``stow.py``: STOW-RS, store (PS3.18 10.5), through the same durable receive as C-STORE.

CORS is off; ``DICOMWEB_CORS_ORIGINS`` lists the origins of an external viewer allowed to call
(django-cors-headers, for these addresses only).
"""

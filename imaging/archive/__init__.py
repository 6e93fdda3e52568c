"""The archive's read side, the services behind every way a study goes back out: the DICOM
listener's C-FIND, C-MOVE, C-GET and Storage Commitment, and DICOMweb's QIDO-RS and WADO-RS.

- ``query.py``: Query/Retrieve matching at PATIENT, STUDY, SERIES and IMAGE level, done by the
  database with the worklist's matching rules (imaging/dicom/records/matching.py, PS3.4 C.2.2.2);
  a study linked to an animal answers with the record's attributes. ``query_keys.py``: the keys
  of each level and the condition each becomes.
- ``retrieve.py``: the instances a retrieve names, streamed from storage, as stored or in a
  transfer syntax the peer accepts.
- ``commitment.py``: Storage Commitment (PS3.4 J): what is durably stored and indexed; the
  requests kept until their report is delivered (``tasks.py``: delivery on a new association,
  retried, and a sweep for lost tasks).
- ``metadata.py``: the metadata kept at ingest for WADO-RS ``/metadata`` (each instance's DICOM
  JSON without bulk data, InstanceMetadata), kept right when an object is replaced or rewritten.
- ``objects.py``: the instances a WADO-RS retrieve names, as stored or decompressed, audited.
- ``bulkdata.py``: frames and bulk data values read out of a stored object (``/frames``,
  ``/bulkdata``); ``stored.py``: a stored object's header read without its bulk data, and
  where its pixel data lies.
- ``rendering.py``: a frame drawn as a JPEG, PNG or GIF (Modality LUT, window, MONOCHROME1,
  colour, viewport), for WADO-RS ``/rendered`` and ``/thumbnail`` and the ingest's thumbnails.
- ``rendered.py``: which instances and frames a ``/rendered`` or ``/thumbnail`` request names,
  audited; a series' representative image.
"""

"""The archive's read side, the services behind every way a study goes back out: the DICOM
listener's C-FIND, C-MOVE, C-GET and Storage Commitment, and DICOMweb's QIDO-RS and WADO-RS.

- ``query.py``: Query/Retrieve matching at PATIENT, STUDY, SERIES and IMAGE level, done by the
  database with the worklist's matching rules (imaging/dicom/records/matching.py, PS3.4 C.2.2.2);
  a study linked to an animal answers with the record's attributes. ``query_keys.py``: the keys
  of each level and the condition each becomes.
- ``retrieve.py``: the instances a retrieve names, streamed from storage, as stored or in a
  transfer syntax the peer accepts.
- ``commitment.py``: Storage Commitment (PS3.4 J): what is durably stored and indexed.
- ``metadata.py``: the series metadata kept at ingest for WADO-RS ``/metadata``.
"""

"""Our records <-> DICOM data sets, with no socket and no network in sight.

datasets.py   record -> data set: the veterinary patient attributes (in one place), worklist
              items and answers, the header rewrite's attributes; name and species agreement
header.py     data set -> record: what the index reads from a received header
matching.py   C-FIND matching (PS3.4 C.2.2.2), done by the database: the primitives the
              worklist and Query/Retrieve share, and the worklist's filter
query_answers.py  Query/Retrieve answers (rows -> attributes; the C-FIND response identifier)
dicom_json.py the DICOM JSON Model (PS3.18 F.2), for QIDO-RS
integrity.py  whether received bytes are a well-formed data set
commitment.py Storage Commitment's request and report (PS3.4 J)
status.py     DIMSE statuses, each a named constant with the standard's meaning
"""

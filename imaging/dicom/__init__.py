"""The DICOM node: net/ is the listener (the protocol), records/ how our records and DICOM
data sets map onto each other (what every channel shares: the worklist, ingest, the header
rewrite). The logic behind each DIMSE service is a service elsewhere: imaging/ingest/ for
C-STORE, imaging/orders/ for the worklist C-FIND (worklist.py) and MPPS (mpps.py)."""

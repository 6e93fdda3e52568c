"""Importing DICOM through the web (issue 17): files, folders, ZIPs and a CD's DICOMDIR dropped
on a patient, order or the reconciliation page, each file through the same durable receive and
ingest as a C-STORE (imaging/ingest/receive.py ``file_receive``)."""

"""The DICOM listener (``manage.py dicom_listener``): thin adapters around the services.

listener.py  the processes (``manage.py dicom_listener``): one, or a dispatcher and N
ae.py        the AE built in one place (what it accepts) and the servers that accept
handlers.py  one handler per DIMSE event, on pynetdicom's public event interface: unpack,
             call a service, map its result or its reason for refusing to a status
access.py    who may associate (the registered modalities) and what each may do, decided
             once per association
commitment.py  Storage Commitment reports on the wire: N-EVENT-REPORT on the request's
             association after its answer, or on a new one to the node (SCP role)
tls.py       DICOM TLS contexts
fast/        the speed work on pynetdicom's private machinery (its reactor, DIMSE receive,
             C-FIND service, PDUs), used only when settings.DICOM_FAST_PATH is on; nothing
             outside it knows it exists (fast/__init__.py)
"""

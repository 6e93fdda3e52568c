"""The DICOM listener (``manage.py dicom_listener``): thin adapters around the services.

ae.py            the AE built in one place (what it accepts), the servers that accept, and
                 the speed work on pynetdicom (event-driven reactors, C-STORE streamed)
handlers.py      one handler per DIMSE event: unpack, call a service, map the result to a status
access.py        who may associate: the registered modalities
tls.py           DICOM TLS contexts
worklist_scp.py  worklist C-FIND answers sent as they are encoded
wire.py          PDUs and command sets read and written directly
"""

"""The DICOM listener (``manage.py dicom_listener``): thin adapters around the services.

listener.py      the processes (``manage.py dicom_listener``): one, or a dispatcher and N
ae.py            the AE built in one place (what it accepts) and the servers that accept
handlers.py      one handler per DIMSE event: unpack, call a service, map the result to a status
access.py        who may associate: the registered modalities
tls.py           DICOM TLS contexts
The speed work on pynetdicom, contained here:
reactor.py       event-driven association threads and sockets
dimse.py         C-STORE served where it is read and streamed to storage; the plain answer
worklist_scp.py  worklist C-FIND answers sent as they are encoded
wire.py          PDUs and command sets read and written directly
"""

"""Imaging orders: what the clinic asks a modality to do, and the worklist it reads.

services.py   order_create, order_status_set, order_reschedule, ... (every channel calls these)
selectors.py  reads the scheduling pages, the day board and the API share
worklist.py   the Modality Worklist's reads: orders matching a C-FIND identifier
mpps.py       Modality Performed Procedure Steps (N-CREATE / N-SET) moving orders along
events.py     order events the integrations subscribe to (HL7 outbound, webhooks)
forms.py, views.py, slots.py, urls.py   the scheduling pages: order form, day board, order page
catalog/      the procedure catalog VetPACS ships (loaded by a migration)

The models are in imaging/models/orders.py.
"""

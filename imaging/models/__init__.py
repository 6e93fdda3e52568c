"""The imaging app's records: registered devices and the index of what they sent
(studies.py), and what the clinic asked them to do (orders.py)."""
from imaging.models.orders import ImagingOrder, OrderStatusChange, PerformedProcedureStep, Procedure
from imaging.models.studies import Instance, InstanceVersion, Modality, Series, Study

__all__ = [
    "ImagingOrder", "Instance", "InstanceVersion", "Modality", "OrderStatusChange",
    "PerformedProcedureStep", "Procedure", "Series", "Study",
]  # fmt: skip

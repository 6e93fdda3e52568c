"""The imaging app's records: registered devices and the index of what they sent
(studies.py), what the clinic asked them to do (orders.py), and the vets' reports (reports.py)."""
from imaging.models.orders import ImagingOrder, OrderStatusChange, PerformedProcedureStep, Procedure
from imaging.models.reports import Report
from imaging.models.studies import Instance, InstanceVersion, Modality, Series, Study

__all__ = [
    "ImagingOrder", "Instance", "InstanceVersion", "Modality", "OrderStatusChange",
    "PerformedProcedureStep", "Procedure", "Report", "Series", "Study",
]  # fmt: skip

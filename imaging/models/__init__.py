"""The imaging app's records: registered devices and the index of what they sent
(studies.py), what the clinic asked them to do (orders.py), and the vets' reports (reports.py).

They stay here, together, while the code that uses them lives in one package per feature
(imaging/orders/, reports/, reconcile/, ingest/, ...): Django looks for an app's models in
its ``models`` module, the migrations name them as ``imaging.<Model>``, and the features share
them (a study is indexed by ingest, linked by reconcile, reported on by reports), so no
feature package is their one owner."""

from imaging.models.commitment import StorageCommitment
from imaging.models.orders import ImagingOrder, OrderStatusChange, PerformedProcedureStep, Procedure
from imaging.models.report_templates import ReportTemplate
from imaging.models.reports import Report
from imaging.models.studies import Instance, InstanceMetadata, InstanceVersion, Modality, Series, Study

__all__ = [
    "ImagingOrder", "Instance", "InstanceMetadata", "InstanceVersion", "Modality", "OrderStatusChange",
    "PerformedProcedureStep", "Procedure", "Report", "ReportTemplate", "Series", "StorageCommitment", "Study",
]  # fmt: skip

"""The imaging app's records: registered devices and the index of what they sent
(studies.py), what the clinic asked them to do (orders.py), the vets' reports (reports.py) and
their templates (report_templates.py), their annotations (annotations.py), and how the viewer
hangs a study (hanging.py).

They stay here, together, while the code that uses them lives in one package per feature
(imaging/orders/, reports/, reconcile/, ingest/, ...): Django looks for an app's models in
its ``models`` module, the migrations name them as ``imaging.<Model>``, and the features share
them (a study is indexed by ingest, linked by reconcile, reported on by reports), so no
feature package is their one owner."""

from imaging.models.annotations import AnnotationSet, AnnotationVersion
from imaging.models.commitment import StorageCommitment
from imaging.models.hanging import HangingProtocol, HangingViewport
from imaging.models.orders import ImagingOrder, OrderStatusChange, PerformedProcedureStep, Procedure
from imaging.models.report_templates import ReportTemplate
from imaging.models.reports import Report
from imaging.models.studies import Instance, InstanceMetadata, InstanceVersion, Modality, Series, Study

__all__ = [
    "AnnotationSet", "AnnotationVersion", "HangingProtocol", "HangingViewport", "ImagingOrder", "Instance",
    "InstanceMetadata", "InstanceVersion", "Modality", "OrderStatusChange", "PerformedProcedureStep", "Procedure",
    "Report", "ReportTemplate", "Series", "StorageCommitment", "Study",
]  # fmt: skip

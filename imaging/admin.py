"""Admin pages: the registered modalities and the procedure catalog are configured here; the
image index, orders, procedure steps and reports are read-only (orders change through the
scheduling pages and services, which audit every change; studies through the reconciliation
pages; reports on the study page, where the vet signs them). The viewer's hanging protocols are
edited here too."""

from django.contrib import admin
from django.forms.models import BaseInlineFormSet
from django.utils.timezone import now

from imaging.models import (
    HangingProtocol,
    HangingViewport,
    ImagingOrder,
    Instance,
    Modality,
    PerformedProcedureStep,
    Procedure,
    Report,
    ReportTemplate,
    Series,
    StorageCommitment,
    Study,
)  # fmt: skip
from patients.admin import ReadOnlyAdmin


class AddressCheckedFilter(admin.SimpleListFilter):
    title = "address checked"
    parameter_name = "address_checked"

    def lookups(self, request, model_admin):
        return [("yes", "Yes: from its host only"), ("no", "No: from any address")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(host="")
        if self.value() == "no":
            return queryset.filter(host="")
        return queryset


@admin.register(Modality)
class ModalityAdmin(admin.ModelAdmin):
    list_display = [
        "ae_title", "modality_type", "station_name", "location", "address", "port",
        "may_store", "may_query", "may_retrieve", "move_destination", "tls", "active",
    ]  # fmt: skip
    list_filter = [
        "modality_type", "active", "may_store", "may_query", "may_retrieve", "move_destination", "tls",
        AddressCheckedFilter,
    ]  # fmt: skip
    search_fields = ["ae_title", "station_name", "location", "host"]
    fieldsets = [
        (None, {"fields": ["ae_title", "modality_type", "station_name", "location", "active"]}),
        ("Network", {
            "fields": ["host", "port"],
            "description": (
                "The DICOM listener takes this AE title only from this host (an IP address, or a name "
                "it resolves). <strong>Without a host, a caller from any address that uses this AE "
                "title may send images and query the worklist.</strong> Set it, e.g. 192.168.1.20."
            ),
        }),
        ("TLS", {
            "fields": ["tls", "tls_ca_certificates", "tls_check_hostname"],
            "description": (
                "When we connect to the node (C-MOVE to it as a move destination, a storage commitment "
                "report on a new association): with <em>use TLS</em>, over DICOM TLS (PS3.15 B.9). Its "
                "certificate must be signed by the authorities pasted here, else by the listener's "
                "DICOM_TLS_CA, else by one the system trusts; we present the listener's certificate "
                "(DICOM_TLS_CERT). Callers choose TLS themselves: the listener speaks it when "
                "DICOM_TLS_CERT is set."
            ),
        }),
        ("What it may do", {
            "fields": ["may_store", "may_query", "may_retrieve", "move_destination"],
            "description": (
                "A modality stores images (and asks for storage commitment, and reports its "
                "procedure steps: MPPS goes with storing) and queries its worklist. A workstation or "
                "another PACS queries and retrieves studies; a move destination is where a C-MOVE may "
                "send them (at the host and port above). A change applies from the node's next "
                "association. A storage commitment report that finds the modality's association "
                "closed goes to the host and port above."
            ),
        }),
    ]  # fmt: skip

    @admin.display(description="address checked", ordering="host")
    def address(self, modality):
        return modality.host if modality.address_checked() else "No: any address"


@admin.register(Study)
class StudyAdmin(ReadOnlyAdmin):
    list_display = [
        "study_date",
        "description",
        "patient",
        "link",
        "accession_number",
        "dicom_patient_name",
        "flag",
    ]
    list_filter = ["link", "study_date"]
    search_fields = [
        "study_instance_uid",
        "accession_number",
        "dicom_patient_id",
        "dicom_patient_name",
        "patient__patient_id",
    ]
    list_select_related = ["patient"]
    date_hierarchy = "study_date"


@admin.register(Series)
class SeriesAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "study", "modality", "body_part", "station_name", "received_from"]
    list_filter = ["modality"]
    search_fields = ["series_instance_uid", "study__study_instance_uid"]
    list_select_related = ["study"]


@admin.register(Instance)
class InstanceAdmin(ReadOnlyAdmin):
    list_display = [
        "sop_instance_uid",
        "series",
        "instance_number",
        "version",
        "file_size",
        "received_from",
        "received_at",
    ]
    search_fields = ["sop_instance_uid", "storage_key"]
    list_select_related = ["series"]


@admin.register(Procedure)
class ProcedureAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "modality_type", "body_part", "duration_minutes", "active"]
    list_filter = ["modality_type", "active"]
    search_fields = ["code", "name"]
    filter_horizontal = ["species"]


@admin.register(ImagingOrder)
class ImagingOrderAdmin(ReadOnlyAdmin):
    list_display = ["accession_number", "scheduled_start", "patient", "procedure", "station", "status"]
    list_filter = ["status", "modality_type", "station"]
    search_fields = [
        "accession_number",
        "study_instance_uid",
        "placer_order_number",
        "patient__name",
        "patient__patient_id",
    ]
    list_select_related = ["patient", "procedure", "station"]
    date_hierarchy = "scheduled_start"


@admin.register(PerformedProcedureStep)
class PerformedProcedureStepAdmin(ReadOnlyAdmin):
    list_display = ["sop_instance_uid", "order", "status", "station_ae", "started_at", "ended_at"]
    list_filter = ["status", "station_ae"]
    search_fields = ["sop_instance_uid", "order__accession_number"]
    list_select_related = ["order"]


@admin.register(Report)
class ReportAdmin(ReadOnlyAdmin):
    list_display = ["study", "status", "version", "signed_by_name", "finalized_at", "updated"]
    list_filter = ["status"]
    search_fields = [
        "study__accession_number",
        "study__study_instance_uid",
        "study__patient__name",
        "signed_by_name",
    ]
    list_select_related = ["study"]
    date_hierarchy = "updated"


@admin.register(StorageCommitment)
class StorageCommitmentAdmin(ReadOnlyAdmin):
    """Storage Commitment requests and their reports (imaging/archive/commitment.py): read-only,
    the listener and the report task write them. An undeliverable one shows why (last error):
    its modality keeps its copies until it asks again."""

    list_display = ["transaction_uid", "calling_ae", "state", "requested_count", "failed_count", "requested_at",
                    "reported_at", "reported_via", "attempts"]  # fmt: skip
    list_filter = ["state", "reported_via", "calling_ae"]
    search_fields = ["transaction_uid", "calling_ae"]
    date_hierarchy = "requested_at"
    list_select_related = ["node"]

    @admin.display(description="objects")
    def requested_count(self, obj):
        return len(obj.requested)

    @admin.display(description="failed")
    def failed_count(self, obj):
        return len(obj.failed)


# Hanging protocols (imaging/models/hanging.py; chosen and applied by imaging/studies/hanging.py).
class HangingViewportFormSet(BaseInlineFormSet):
    """Each viewport must be one the protocol's layout has."""

    def clean(self):
        super().clean()
        count = {"1x1": 1, "1x2": 2, "2x2": 4}.get(self.instance.layout or "", 4)
        for form in self.forms:
            data = getattr(form, "cleaned_data", None) or {}
            if data and not data.get("DELETE") and (data.get("position") or 0) > count:
                form.add_error("position", f"The layout {self.instance.layout} has {count} viewport(s).")


class HangingViewportInline(admin.TabularInline):
    model = HangingViewport
    formset = HangingViewportFormSet
    extra = 0
    min_num = 1
    fields = ["position", "label", "view_positions", "keywords"]


@admin.register(HangingProtocol)
class HangingProtocolAdmin(admin.ModelAdmin):
    list_display = ["name", "modality", "body_part", "species", "layout", "active"]
    list_filter = ["modality", "layout", "active"]
    search_fields = ["name", "body_part"]
    list_select_related = ["species"]
    inlines = [HangingViewportInline]
    fieldsets = [
        (None, {
            "fields": ["name", "modality", "body_part", "species", "layout", "active"],
            "description": (
                "When the viewer opens a study it hangs it by the most specific active protocol that "
                "fits: species, body part and modality, then body part and modality, then species and "
                "modality, then modality alone. Each viewport below takes the series that fits it best: "
                "by View Position first, then by a keyword found whole in the series description."
            ),
        }),
    ]  # fmt: skip

    def save_model(self, request, obj, form, change):
        obj.updated = now()
        super().save_model(request, obj, form, change)


# Report templates (the viewer's report panel): the clinic writes its own wording here.
@admin.register(ReportTemplate)
class ReportTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "procedure", "modality_type", "body_part", "species", "active"]
    list_filter = ["modality_type", "species", "active"]
    search_fields = ["name", "findings", "conclusion"]
    list_select_related = ["procedure", "species"]

"""Admin pages: the vocabulary and crosswalk that clinics maintain, and a view of the record.

Owners and patients are changed through the front-desk pages (which audit and keep the search
index current); here they are read-only.
"""

from urllib.parse import urlencode

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from patients.crosswalk import code_mapping_apply
from patients.models import Breed, CodeMapping, Owner, Patient, Species, UnmappedCode, Visit
from vetclinic.audit.admin import ReadOnlyAdmin
from vetclinic.audit.services import Actor


@admin.register(Species)
class SpeciesAdmin(admin.ModelAdmin):
    list_display = ["name", "meaning", "scheme", "code", "group", "is_local", "active"]
    list_filter = ["group", "scheme", "is_local", "active"]
    search_fields = ["name", "meaning", "code"]


@admin.register(Breed)
class BreedAdmin(admin.ModelAdmin):
    list_display = ["name", "species", "meaning", "scheme", "code", "is_mixed", "is_local", "active"]
    list_filter = ["species", "is_mixed", "is_local", "active"]
    search_fields = ["name", "meaning", "code"]
    list_select_related = ["species"]


@admin.register(CodeMapping)
class CodeMappingAdmin(admin.ModelAdmin):
    """Saving an entry moves the animals and orders that waited for its code (applied after
    the commit: integrations/hl7/held.py); the action does it again for those that failed."""

    list_display = ["system", "kind", "external_code", "external_meaning", "species", "breed", "procedure"]
    list_filter = ["system", "kind"]
    search_fields = ["external_code", "external_meaning"]
    autocomplete_fields = ["species", "breed", "procedure"]
    actions = ["apply"]

    @admin.action(description="Move the animals that carried these codes over again", permissions=["change"])
    def apply(self, request, queryset):
        moved = sum(code_mapping_apply(actor=Actor.for_user(request.user), mapping=m) for m in queryset)
        self.message_user(request, f"{moved} animal(s) moved.", messages.SUCCESS)


@admin.register(UnmappedCode)
class UnmappedCodeAdmin(ReadOnlyAdmin):
    """Codes senders used that the crosswalk does not map: each with how often, the last
    messages that carried it and a link that opens a crosswalk entry for it, filled in."""

    list_display = ["external_code", "external_meaning", "kind", "system", "count", "last_seen", "example",
                    "map_link"]  # fmt: skip
    list_filter = ["kind", "system", ("mapped", admin.EmptyFieldListFilter)]
    search_fields = ["external_code", "external_meaning"]
    readonly_fields = ["system", "kind", "external_code", "external_meaning", "count", "examples", "species",
                       "breed", "first_seen", "last_seen", "mapped"]  # fmt: skip

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("patients.view_codemapping")

    @admin.display(description="Last example")
    def example(self, code):
        last = code.examples[0] if code.examples else {}
        return ", ".join(f"{k} {v}" for k, v in last.items() if k != "at" and v)

    @admin.display(description="")
    def map_link(self, code):
        if code.mapped:
            return "mapped"
        query = urlencode({"system": code.system, "kind": code.kind, "external_code": code.external_code,
                           "external_meaning": code.external_meaning})  # fmt: skip
        return format_html('<a href="{}?{}">Map it</a>', reverse("admin:patients_codemapping_add"), query)


@admin.register(Owner)
class OwnerAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "phone", "mobile", "email", "city"]
    search_fields = ["family_name", "organisation_name", "email"]


@admin.register(Patient)
class PatientAdmin(ReadOnlyAdmin):
    list_display = ["name", "patient_id", "species", "breed", "microchip", "merged_into"]
    list_filter = ["species"]
    search_fields = ["name", "patient_id", "microchip"]
    list_select_related = ["species", "breed", "merged_into"]


@admin.register(Visit)
class VisitAdmin(ReadOnlyAdmin):
    list_display = ["starts_at", "patient", "reason", "vet", "status"]
    list_filter = ["status"]
    date_hierarchy = "starts_at"
    list_select_related = ["patient", "vet"]

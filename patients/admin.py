"""Admin pages: the vocabulary and crosswalk that clinics maintain, and a view of the record.

Owners and patients are changed through the front-desk pages (which audit and keep the search
index current); here they are read-only.
"""
from django.contrib import admin

from patients.models import Breed, CodeMapping, Owner, Patient, Species, Visit


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


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
    list_display = ["system", "kind", "external_code", "external_meaning", "species", "breed"]
    list_filter = ["system", "kind"]
    search_fields = ["external_code", "external_meaning"]
    autocomplete_fields = ["species", "breed"]


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

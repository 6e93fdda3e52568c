"""Front-desk forms. They validate everything before a service runs, so nothing is half-saved."""

import re
from decimal import Decimal

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.urls import reverse

from patients.models import Breed, Owner, Ownership, Patient, Species, Visit, staff_name
from patients.selectors import breed_choices, species_choices
from vetclinic import clock
from vetclinic.forms import formfield

PHONE = re.compile(r"^\+?[0-9 ()./-]+$")


def _clean_phone(value):
    value = value.strip()
    if value and (not PHONE.match(value) or len(re.sub(r"\D", "", value)) < 6):
        raise forms.ValidationError("Enter a phone number: digits, spaces, +, ( ) or -, at least 6 digits.")
    return value


class OwnerForm(forms.ModelForm):
    class Meta:
        model = Owner
        formfield_callback = formfield
        fields = [
            "kind", "title", "family_name", "given_name", "organisation_name", "phone", "mobile",
            "email", "address_line1", "address_line2", "city", "postcode", "country", "notes",
        ]  # fmt: skip
        widgets = {
            "kind": forms.RadioSelect,
            "notes": forms.Textarea(attrs={"rows": 3}),
            "family_name": forms.TextInput(attrs={"autofocus": True}),
        }

    def clean_phone(self):
        return _clean_phone(self.cleaned_data["phone"])

    def clean_mobile(self):
        return _clean_phone(self.cleaned_data["mobile"])

    def clean(self):
        data = super().clean()
        if data.get("kind") == Owner.Kind.ORGANISATION:
            if not data.get("organisation_name"):
                self.add_error("organisation_name", "An organisation needs its name.")
        elif not data.get("family_name"):
            self.add_error("family_name", "A person needs a family name.")
        return data


class PatientForm(forms.ModelForm):
    """The animal, with its weight today; the breed list narrows to the chosen species."""

    weight_kg = forms.DecimalField(
        label="Weight (kg)", required=False, min_value=Decimal("0.001"), max_value=Decimal("2000"),
        decimal_places=3,
    )  # fmt: skip

    class Meta:
        model = Patient
        formfield_callback = formfield  # the dates as <input type="date"> reads them
        fields = [
            "name", "species", "breed", "breed_text", "sex", "neutered", "birth_date",
            "birth_date_estimated", "colour", "microchip", "patient_id", "deceased", "deceased_on",
            "notes",
        ]  # fmt: skip
        widgets = {
            "name": forms.TextInput(attrs={"autofocus": True}),
            "notes": forms.Textarea(attrs={"rows": 3}),
        }
        help_texts = {"patient_id": "Leave empty to have one assigned."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A value no longer offered (a species or breed retired from the vocabulary, a vet who
        # left) stays offered on the record that has it: a select without it would send
        # nothing back, and saving the form unchanged would erase it.
        kept = Q(pk=self.instance.species_id) if self.instance.species_id else Q(pk__in=[])
        species_offered = species_choices() | Species.objects.filter(kept)
        self.fields["species"].queryset = species_offered.order_by("group", "name")
        # Choosing a species swaps in its breeds (htmx); without script the server re-checks.
        self.fields["species"].widget.attrs.update(
            {"hx-get": reverse("breed_options"), "hx-target": "#id_breed", "hx-trigger": "change"}
        )
        self.fields["patient_id"].required = False
        self.fields["microchip"].widget.attrs["inputmode"] = "numeric"
        # Any breed is accepted here so that clean() can say which species it belongs to;
        # the list offered is that of the chosen species.
        breeds = Breed.objects.filter(Q(active=True) | Q(pk=self.instance.breed_id))
        self.fields["breed"].queryset = breeds.select_related("species")
        species = self._chosen_species()
        offered = list(breed_choices(species=species)) if species else []
        current = self.instance.breed if self.instance.breed_id else None
        if current and current.species_id == getattr(species, "pk", None) and current not in offered:
            offered.insert(0, current)
        offered = [(b.pk, b.name) for b in offered]
        self.fields["breed"].widget.choices = [("", "— not listed / unknown —")] + offered
        if self.instance.pk:
            self.fields["patient_id"].disabled = True
            self.initial.setdefault("weight_kg", self.instance.current_weight)

    def _chosen_species(self):
        if self.is_bound:
            value = str(self.data.get(self.add_prefix("species"), ""))
        else:
            value = str(getattr(self.initial.get("species"), "pk", "") or self.instance.species_id or "")
        return Species.objects.filter(pk=value).first() if value.isdigit() else None

    def clean_microchip(self):
        chip = re.sub(r"[\s-]", "", self.cleaned_data["microchip"])
        # ISO 11784/11785 transponders carry 15 digits; older FDX-A/AVID chips 9 or 10 characters.
        if chip and not (re.fullmatch(r"\d{15}", chip) or re.fullmatch(r"[0-9A-Za-z]{9,10}", chip)):
            raise forms.ValidationError(
                "A microchip number is 15 digits (ISO 11784), or 9–10 characters for older chips."
            )
        chip = chip.upper()
        other = (
            Patient.objects.filter(microchip=chip, merged_into__isnull=True)
            .exclude(pk=self.instance.pk)
            .first()
        )
        if chip and other:
            raise forms.ValidationError(f"This microchip is already recorded for {other}.")
        return chip

    def clean_patient_id(self):
        value = (self.cleaned_data.get("patient_id") or "").strip()
        if value and not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", value):
            raise forms.ValidationError("Use letters, digits, '.', '_' or '-' (at most 64).")
        return value or None

    def clean_birth_date(self):
        born = self.cleaned_data["birth_date"]
        if born and born > clock.today():
            raise forms.ValidationError("The birth date is in the future.")
        return born

    def clean(self):
        data = super().clean()
        breed, species = data.get("breed"), data.get("species")
        if breed and species and breed.species_id != species.pk:
            self.add_error("breed", f"{breed} is not a {species} breed.")
        if data.get("deceased_on") and not data.get("deceased"):
            self.add_error("deceased", "Tick deceased when giving a date of death.")
        if data.get("deceased_on") and data.get("birth_date") and data["deceased_on"] < data["birth_date"]:
            self.add_error("deceased_on", "The date of death is before the birth date.")
        if data.get("deceased_on") and data["deceased_on"] > clock.today():
            self.add_error("deceased_on", "The date of death is in the future.")
        return data

    def service_fields(self):
        """The fields for patient_upsert: all of a new animal's; of a record, those changed
        (what the person did not touch stays as stored)."""
        return {
            name: self.cleaned_data[name]
            for name in self.Meta.fields
            if not self.instance.pk or name in self.changed_data
        }


class OwnershipForm(forms.Form):
    owner = forms.ModelChoiceField(queryset=Owner.objects.all(), widget=forms.HiddenInput)
    role = forms.ChoiceField(choices=Ownership.Role.choices, initial=Ownership.Role.OWNER)
    primary = forms.BooleanField(required=False, label="Primary owner (DICOM Responsible Person)")


class VisitForm(forms.ModelForm):
    class Meta:
        model = Visit
        fields = ["starts_at", "reason", "vet", "status"]
        formfield_callback = formfield

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.instance.pk:  # a new visit: now, to the minute, by the clinic's clock
            self.initial.setdefault("starts_at", clock.localnow().replace(second=0, microsecond=0))
        vets = Q(groups__name="veterinarian", is_active=True)
        if self.instance.vet_id:  # as for the patient's species: the visit's vet stays offered
            vets |= Q(pk=self.instance.vet_id)
        users = get_user_model().objects.filter(vets).distinct()
        self.fields["vet"].queryset = users.order_by("last_name", "username")
        self.fields["vet"].label_from_instance = staff_name


class MergeForm(forms.Form):
    """Which record survives: the one whose page we are on absorbs the other."""

    other = forms.CharField(label="Patient ID of the duplicate", max_length=64)

    def __init__(self, *args, target, **kwargs):
        super().__init__(*args, **kwargs)
        self.target = target

    def clean_other(self):
        value = self.cleaned_data["other"].strip()
        other = Patient.objects.filter(patient_id__iexact=value).select_related("species").first()
        if other is None:
            raise forms.ValidationError(f"No patient has the ID {value}.")
        if other.pk == self.target.pk:
            raise forms.ValidationError("That is this patient.")
        if other.merged_into_id:
            raise forms.ValidationError(f"{other} was already merged into {other.merged_into}.")
        if other.species_id != self.target.species_id:
            raise forms.ValidationError(f"{other.name} is a {other.species}, not a {self.target.species}.")
        return other

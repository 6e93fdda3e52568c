"""Front-desk pages: thin adapters that validate a form and call a service."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from imaging.orders.selectors import patient_orders
from imaging.studies.selectors import patient_studies
from patients import selectors, services
from patients.forms import MergeForm, OwnerForm, OwnershipForm, PatientForm, VisitForm
from patients.models import Owner, Ownership, Patient, Species, Visit
from vetclinic import clock
from vetclinic.audit.selectors import audit_history
from vetclinic.audit.services import Actor


def _actor(request):
    return Actor.for_user(request.user)


def _service_errors(form, error):
    """Show a service's ValidationError on the form instead of a 500."""
    form.add_error(None, error)


@login_required
@require_GET
def home(request):
    query = request.GET.get("q", "").strip()
    patients = selectors.patient_search(query=query) if query else None
    if request.htmx and request.htmx.target == "search-results":
        return render(request, "patients/_search_results.html", {"patients": patients, "query": query})
    today = clock.today()
    visits = (
        Visit.objects.filter(starts_at__date=today)
        .select_related("patient__species", "vet")
        .order_by("starts_at")
    )
    return render(request, "patients/home.html", {"patients": patients, "query": query, "visits": visits})


@login_required
@permission_required("patients.view_owner", raise_exception=True)
def owner_search(request, pk):
    """Owner picker (htmx) on a patient's page: each match comes with its own add button."""
    query = request.GET.get("q", "").strip()
    patient = get_object_or_404(Patient, pk=pk, merged_into__isnull=True)
    owners = selectors.owner_search(query=query, limit=10) if query else []
    context = {"owners": owners, "query": query, "patient": patient, "roles": Ownership.Role.choices}
    return render(request, "patients/_owner_results.html", context)


@login_required
@permission_required("patients.view_owner", raise_exception=True)
def owner_detail(request, pk):
    owner = get_object_or_404(Owner.objects.prefetch_related("external_ids"), pk=pk)
    ownerships = selectors.owner_patients(owner=owner)
    return render(request, "patients/owner_detail.html", {"owner": owner, "ownerships": ownerships})


@login_required
@permission_required("patients.add_owner", raise_exception=True)
def owner_create(request):
    return _owner_form(request, Owner())


@login_required
@permission_required("patients.change_owner", raise_exception=True)
def owner_edit(request, pk):
    return _owner_form(request, get_object_or_404(Owner, pk=pk))


def _owner_form(request, owner):
    form = OwnerForm(request.POST or None, instance=owner)
    if request.method == "POST" and form.is_valid():
        # An existing owner gets only what the person changed: a field they did not touch
        # stays as stored, whatever its input could show.
        names = form.changed_data if owner.pk else form.Meta.fields
        fields = {name: form.cleaned_data[name] for name in names}
        try:
            # The form has set its values on its instance already; the service compares
            # against the stored row, so it gets that row.
            stored = Owner.objects.get(pk=owner.pk) if owner.pk else None
            owner = services.owner_upsert(actor=_actor(request), fields=fields, owner=stored)
        except ValidationError as error:
            _service_errors(form, error)
        else:
            messages.success(request, f"Saved {owner}.")
            return redirect("owner_detail", pk=owner.pk)
    return render(request, "patients/owner_form.html", {"form": form, "owner": owner})


@login_required
@permission_required("patients.view_patient", raise_exception=True)
def patient_detail(request, pk):
    try:
        patient = selectors.patient_detail(pk=pk)
    except Patient.DoesNotExist:
        raise Http404("No such patient.") from None
    if patient.merged_into_id:
        living = selectors.patient_resolve(patient)
        messages.info(request, f"{patient.patient_id} was merged into {living.patient_id}.")
        return redirect("patient_detail", pk=living.pk)
    context = {
        "patient": patient,
        "visits": selectors.patient_visits(patient=patient)[:50],
        "weights": patient.weights.all()[:20],
        "visit_form": VisitForm(initial={"status": Visit.Status.BOOKED}),
    }
    if request.user.has_perm("imaging.view_imagingorder"):
        context["orders"] = patient_orders(patient=patient)[:50]
    if request.user.has_perm("imaging.view_study"):
        context["studies"] = patient_studies(patient=patient)
    if request.user.has_perm("audit.view_auditentry"):
        context["history"] = audit_history(instance=patient)
    return render(request, "patients/patient_detail.html", context)


@login_required
@permission_required("patients.add_patient", raise_exception=True)
def patient_create(request, owner_pk=None):
    owner = get_object_or_404(Owner, pk=owner_pk) if owner_pk else None
    return _patient_form(request, Patient(), owner)


@login_required
@permission_required("patients.change_patient", raise_exception=True)
def patient_edit(request, pk):
    return _patient_form(request, get_object_or_404(Patient, pk=pk, merged_into__isnull=True), None)


def _patient_form(request, patient, owner):
    initial = {"species": Species.objects.filter(code="448771007").first()} if not patient.pk else {}
    form = PatientForm(request.POST or None, instance=patient, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            patient = services.patient_upsert(
                actor=_actor(request),
                fields=form.service_fields(),
                patient=Patient.objects.get(pk=patient.pk) if patient.pk else None,  # as for owners
                owner=owner,
                weight_kg=form.cleaned_data["weight_kg"] if "weight_kg" in form.changed_data else None,
            )
        except ValidationError as error:
            _service_errors(form, error)
        else:
            messages.success(request, f"Saved {patient.name} ({patient.patient_id}).")
            return redirect("patient_detail", pk=patient.pk)
    return render(request, "patients/patient_form.html", {"form": form, "patient": patient, "owner": owner})


@login_required
@require_GET
def breed_options(request):
    """The breed <option>s for one species (htmx swaps them in when the species changes)."""
    species_pk = request.GET.get("species", "")
    species = Species.objects.filter(pk=species_pk).first() if species_pk.isdigit() else None
    breeds = selectors.breed_choices(species=species) if species else []
    return render(request, "patients/_breed_options.html", {"breeds": breeds})


@login_required
@permission_required("patients.add_ownership", raise_exception=True)
@require_POST
def ownership_add(request, pk):
    patient = get_object_or_404(Patient, pk=pk, merged_into__isnull=True)
    form = OwnershipForm(request.POST)
    if form.is_valid():
        services.ownership_set(
            actor=_actor(request),
            patient=patient,
            owner=form.cleaned_data["owner"],
            role=form.cleaned_data["role"],
            primary=form.cleaned_data["primary"] or None,
        )
        messages.success(request, f"{form.cleaned_data['owner']} added.")
    else:
        messages.error(request, "Choose an owner from the search results first.")
    return redirect("patient_detail", pk=patient.pk)


@login_required
@permission_required("patients.add_visit", raise_exception=True)
def visit_create(request, pk):
    patient = get_object_or_404(Patient, pk=pk, merged_into__isnull=True)
    form = VisitForm(request.POST or None, initial={"status": Visit.Status.BOOKED})
    if request.method == "POST" and form.is_valid():
        services.visit_create(actor=_actor(request), patient=patient, **form.cleaned_data)
        messages.success(request, "Visit booked.")
        return redirect("patient_detail", pk=patient.pk)
    return render(request, "patients/visit_form.html", {"form": form, "patient": patient})


@login_required
@permission_required("patients.change_visit", raise_exception=True)
def visit_edit(request, pk):
    visit = get_object_or_404(Visit.objects.select_related("patient"), pk=pk)
    form = VisitForm(request.POST or None, instance=visit)
    if request.method == "POST" and form.is_valid():
        stored = Visit.objects.get(pk=visit.pk)  # as for owners
        changed = {name: form.cleaned_data[name] for name in form.changed_data}  # as for owners
        services.visit_update(actor=_actor(request), visit=stored, fields=changed)
        messages.success(request, "Visit saved.")
        return redirect("patient_detail", pk=visit.patient_id)
    return render(
        request, "patients/visit_form.html", {"form": form, "patient": visit.patient, "visit": visit}
    )


@login_required
@permission_required("patients.merge_patient", raise_exception=True)
def patient_merge(request, pk):
    """Two steps: name the duplicate, then confirm on a page that shows both side by side."""
    target = get_object_or_404(Patient, pk=pk, merged_into__isnull=True)
    form = MergeForm(request.POST or request.GET or None, target=target)
    if form.is_bound and form.is_valid():
        source = form.cleaned_data["other"]
        if request.method == "POST" and request.POST.get("confirm") == "yes":
            try:
                services.patient_merge(actor=_actor(request), source=source, target=target)
            except ValidationError as error:
                _service_errors(form, error)
            else:
                messages.success(request, f"{source.patient_id} merged into {target.patient_id}.")
                return redirect("patient_detail", pk=target.pk)
        counts = {
            p.pk: p
            for p in Patient.objects.filter(pk__in=[source.pk, target.pk]).annotate(
                visit_count=Count("visits", distinct=True), owner_count=Count("ownerships", distinct=True)
            )
        }
        return render(
            request,
            "patients/patient_merge_confirm.html",
            {"form": form, "source": counts[source.pk], "target": counts[target.pk]},
        )
    return render(request, "patients/patient_merge.html", {"form": form, "target": target})

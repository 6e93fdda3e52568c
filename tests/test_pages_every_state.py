"""Every page of the UI, for every staff role, renders records whose optional fields are all
empty, as HL7, REST and the DICOM node create them (a visit without a vet, an animal without an
owner, an order without a station, a study without a date, a patient or a series): 200 for
whoever may see it, 403 for the others, and never an error. A template that reads something the
context does not have fails here too: the test renders with a marker for invalid variables."""

import re

import pytest
from django.contrib import admin
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from pydicom.uid import generate_uid

from imaging.models import ImagingOrder, Instance, PerformedProcedureStep, Procedure, Report, Series, Study
from imaging.orders.services import order_create
from importing.models import Upload
from patients.models import Owner, Patient, Visit
from patients.services import owner_upsert, patient_upsert, visit_create
from vetclinic import clock

pytestmark = pytest.mark.django_db
INVALID = "⟦invalid:"


@pytest.fixture
def marked_templates(settings):
    """Django renders a variable it cannot resolve as "" silently; here, as a marker."""
    settings.TEMPLATES = [
        {**engine, "OPTIONS": {**engine.get("OPTIONS", {}), "string_if_invalid": INVALID + "%s⟧"}}
        for engine in settings.TEMPLATES
    ]


@pytest.fixture
def bare(actor, dog, stations, staff):
    """One record of each kind with nothing but what the models require."""
    owner = owner_upsert(actor=actor, fields={"family_name": "Bare"})
    organisation = owner_upsert(
        actor=actor, fields={"kind": Owner.Kind.ORGANISATION, "organisation_name": "Shelter"}
    )
    patient = patient_upsert(actor=actor, fields={"name": "Nobody", "species": dog})  # no owner
    owned = patient_upsert(actor=actor, fields={"name": "Owned", "species": dog}, owner=owner)
    visit = visit_create(
        actor=actor, patient=patient, starts_at=clock.now()
    )  # no vet, no reason: as HL7 ADT books
    order = order_create(
        actor=actor, patient=patient, procedure=Procedure.objects.get(code="DX-THX2"),
        scheduled_start=Visit.objects.get(pk=visit.pk).starts_at,
    )  # fmt: skip
    ImagingOrder.objects.filter(pk=order.pk).update(station=None)  # "any DX station" (HL7 gives none)
    unmatched = Study.objects.create(study_instance_uid=generate_uid())  # no patient, date, anything
    linked = Study.objects.create(
        study_instance_uid=order.study_instance_uid, patient=patient, order=order, link=Study.Link.ORDER
    )
    series = Series.objects.create(study=linked, series_instance_uid=generate_uid())
    Series.objects.create(study=linked, series_instance_uid=generate_uid())
    Instance.objects.create(
        series=series, sop_instance_uid=generate_uid(), sop_class_uid="1.2.840.10008.5.1.4.1.1.1",
        transfer_syntax_uid="1.2.840.10008.1.2.1", file_size=1, storage_key="bare/1",
    )  # fmt: skip
    Report.objects.create(study=linked)  # a draft with nothing written yet
    PerformedProcedureStep.objects.create(sop_instance_uid=generate_uid(), order=order, status="COMPLETED")
    return {"owner": owner, "organisation": organisation, "patient": patient, "owned": owned, "visit": visit,
            "order": order, "unmatched": unmatched, "linked": linked, "series": series}  # fmt: skip


@pytest.fixture
def full(actor, dog, labrador, stations, staff):
    """The same records with every field filled, a signed and amended report, a deceased animal."""
    from datetime import date
    from decimal import Decimal

    from imaging.reports.services import report_amend, report_finalize
    from patients.services import ownership_set
    from vetclinic.audit.services import Actor

    owner = owner_upsert(actor=actor, fields={
        "title": "Dr", "family_name": "Full", "given_name": "Ada", "phone": "01632 960456", "mobile": "07700 900123",
        "email": "ada@example.org", "address_line1": "1 High St", "address_line2": "Flat 2", "city": "Bristol",
        "postcode": "BS1", "country": "GB", "notes": "Notes",
    })  # fmt: skip
    organisation = owner_upsert(actor=actor, fields={
        "kind": Owner.Kind.ORGANISATION, "organisation_name": "Shelter", "phone": "01632 960999", "email": "s@example.org",
    })  # fmt: skip
    fields = {"name": "Fully", "species": dog, "breed": labrador, "breed_text": "Lab", "sex": "F", "neutered": "ALTERED",
              "birth_date": date(2019, 4, 2), "birth_date_estimated": True, "colour": "Black",
              "microchip": "985141000123456", "notes": "Bites"}  # fmt: skip
    patient = patient_upsert(
        actor=actor, fields=fields, owner=owner, weight_kg=Decimal("31.4"), external=("PMS", "A1")
    )
    ownership_set(actor=actor, patient=patient, owner=organisation, role="agent")
    owned = patient_upsert(actor=actor, fields={"name": "Owned", "species": dog}, owner=organisation)
    visit = visit_create(
        actor=actor, patient=patient, starts_at=clock.now(), reason="Lame", vet=staff["veterinarian"]
    )
    order = order_create(
        actor=actor, patient=patient, procedure=Procedure.objects.get(code="DX-THX2"), scheduled_start=clock.now(),
        station=stations["DX"], visit=visit, reason="Cough\nfor weeks", referring_vet="Dr A", performing_vet="Dr B",
        priority="STAT", weight_kg=Decimal("31.4"), placer_order_number="P1", filler_order_number="F1",
        teleradiology=True,
    )  # fmt: skip
    unmatched = Study.objects.create(
        study_instance_uid=generate_uid(), description="Abdomen", study_date=date(2026, 11, 23), accession_number="X1",
        dicom_patient_name="Full^Fully", dicom_patient_id="P1", dicom_species="Canis", flag="Check the species",
        dicom_birth_date=date(2019, 4, 2), referring_physician="Dr A",
    )  # fmt: skip
    Series.objects.create(study=unmatched, series_instance_uid=generate_uid(), modality="DX", series_number=1)
    linked = Study.objects.create(
        study_instance_uid=order.study_instance_uid, patient=patient, order=order, link=Study.Link.ORDER,
        description="Thorax", study_date=date(2026, 11, 23), accession_number=order.accession_number,
    )  # fmt: skip
    series = Series.objects.create(study=linked, series_instance_uid=generate_uid(), modality="DX", series_number=1,
                                   description="Lat", body_part="CHEST", thumbnail_key="thumbs/none.png")  # fmt: skip
    Series.objects.create(study=linked, series_instance_uid=generate_uid(), modality="DX", series_number=2)
    vet = Actor.for_user(staff["veterinarian"])
    report_finalize(actor=vet, study=linked, findings="Bronchial.", conclusion="Bronchitis.")
    report_amend(
        actor=vet, study=linked, findings="Bronchial.", conclusion="Bronchitis, mild.", reason="Typo"
    )
    PerformedProcedureStep.objects.create(
        sop_instance_uid=generate_uid(), order=order, status="COMPLETED", station_ae="DRROOM", modality="DX",
        started_at=clock.now(), ended_at=clock.now(), performed_series=[{"description": "Lat", "images": 2}],
    )  # fmt: skip
    # A consult sent to a registered service, answered by HL7 (final, then corrected) and by a
    # preliminary SR: the study page shows the placer number, the destination and each status.
    from sending.models import Destination
    from sharing.models import ConsultRequest
    from sharing.services import consult_create, consult_report_file

    consult, _ = consult_create(actor=vet, study=linked, destination="VetReads", clinical_question="Nodules?")
    tele = Destination.objects.create(name="VetReads", node=stations["CT"])
    # (No instances here for study_send to send: the destination is set as consult_create would.)
    ConsultRequest.objects.filter(pk=consult.pk).update(sent_to=tele)
    consult.refresh_from_db()
    consult_report_file(consult=consult, author_name="Dr R", text="Early.", source="sr", source_id="1.2.3",
                        status="preliminary")  # fmt: skip
    consult_report_file(consult=consult, author_name="Dr R", text="Normal.", source="hl7", source_id="T:1")
    consult_report_file(consult=consult, author_name="Dr R", text="Nodule.", source="hl7", source_id="T:2",
                        status="corrected")  # fmt: skip
    patient_upsert(actor=actor, patient=patient, fields={"deceased": True, "deceased_on": date(2026, 11, 23)})
    return {"owner": owner, "organisation": organisation, "patient": patient, "owned": owned, "visit": visit,
            "order": order, "unmatched": unmatched, "linked": linked, "series": series}  # fmt: skip


HTMX = {"HTTP_HX_REQUEST": "true"}


def cases(r):
    """(url name, args, query, headers, permission needed, status when allowed) for every UI page."""
    patient, order = r["patient"], r["order"]
    slot = {"station": "DRROOM", "day": "2026-11-23", "time": "10:00"}
    signed = Report.objects.filter(
        study=r["linked"], status__in=[Report.Status.FINAL, Report.Status.AMENDED]
    ).exists()
    # The records' instances name stored objects that are not there: a ZIP of them is refused.
    stored = Instance.objects.filter(series__study=r["linked"]).exists()
    # An upload dropped on the animal, nothing in it read yet (importing/).
    upload = Upload.objects.filter(patient=patient).first() or Upload.objects.create(patient=patient)
    editable = ImagingOrder.objects.get(pk=order.pk).details_editable()
    return [
        ("home", [], {}, {}, None, 200),
        ("home", [], {"q": "nobody"}, {}, None, 200),
        ("home", [], {"q": "nobody"}, {**HTMX, "HTTP_HX_TARGET": "search-results"}, None, 200),
        ("owner_create", [], {}, {}, "patients.add_owner", 200),
        ("owner_detail", [r["owner"].pk], {}, {}, "patients.view_owner", 200),
        ("owner_detail", [r["organisation"].pk], {}, {}, "patients.view_owner", 200),
        ("owner_edit", [r["owner"].pk], {}, {}, "patients.change_owner", 200),
        ("owner_edit", [r["organisation"].pk], {}, {}, "patients.change_owner", 200),
        ("owner_patient_create", [r["owner"].pk], {}, {}, "patients.add_patient", 200),
        ("patient_create", [], {}, {}, "patients.add_patient", 200),
        ("breed_options", [], {"species": patient.species_id}, {}, None, 200),
        ("patient_detail", [patient.pk], {}, {}, "patients.view_patient", 200),
        ("patient_detail", [r["owned"].pk], {}, {}, "patients.view_patient", 200),
        ("patient_edit", [patient.pk], {}, {}, "patients.change_patient", 200),
        ("owner_search", [patient.pk], {"q": "bare"}, HTMX, "patients.view_owner", 200),
        ("ownership_add", [patient.pk], {}, {}, "patients.add_ownership", 405),  # POST only
        ("visit_create", [patient.pk], {}, {}, "patients.add_visit", 200),
        ("photo_upload", [patient.pk], {}, {}, "imaging.change_study", 200),  # photos and video (issue 17)
        ("patient_merge", [patient.pk], {}, {}, "patients.merge_patient", 200),
        ("patient_merge", [patient.pk], {"other": r["owned"].patient_id}, {}, "patients.merge_patient", 200),
        ("visit_edit", [r["visit"].pk], {}, {}, "patients.change_visit", 200),
        ("reconciliation", [], {}, {}, "imaging.view_study", 200),
        ("study_detail", [r["unmatched"].pk], {}, {}, "imaging.view_study", 200),
        ("reading_list", [], {}, {}, "imaging.view_study", 200),
        ("reading_list", [], {"q": "nobody", "date_from": "2026-11-01", "date_to": "not a date", "modality": "DX",
         "station": "DRROOM", "referring": "a", "report": "unread", "page": "2"}, {}, "imaging.view_study", 200),
        ("study_detail", [r["linked"].pk], {}, {}, "imaging.view_study", 200),
        ("study_viewer", [r["unmatched"].pk], {}, {}, "imaging.view_study", 200),
        ("study_viewer", [r["linked"].pk], {}, {}, "imaging.view_study", 200),
        # The viewer's JSON (imaging/studies/compare_views.py): the animal's other studies, the hanging.
        ("study_priors_json", [r["unmatched"].pk], {}, {}, "imaging.view_study", 200),
        ("study_priors_json", [r["linked"].pk], {}, {}, "imaging.view_study", 200),
        ("study_hanging_json", [r["linked"].pk], {}, {}, "imaging.view_study", 200),
        # Sending (sending/views.py): the study page's card, and its two posts.
        ("study_sends", [r["linked"].pk], {}, HTMX, "sending.view_send", 200),
        ("study_sends", [r["unmatched"].pk], {}, HTMX, "sending.view_send", 200),
        ("study_send", [r["linked"].pk], {}, {}, "sending.add_send", 405),  # POST only
        ("send_alert_dismiss", [1], {}, {}, "sending.add_send", 405),  # POST only
        # Export (imaging/export/): the signed report's PDF, none for a study without a report,
        # the study's files (none stored yet here), an image that is not there.
        ("report_export_pdf", [r["linked"].pk], {}, {}, "imaging.view_report", 200 if signed else 409),
        ("report_export_pdf", [r["unmatched"].pk], {}, {}, "imaging.view_report", 404),
        ("study_export_zip", [r["linked"].pk], {}, {}, "imaging.change_annotationset", 409 if stored else 404),
        ("image_export", [r["linked"].pk, "1.2.3", 1, "jpg"], {}, {}, "imaging.change_annotationset", 404),
        # Importing (importing/): the drop's post, and an upload's page.
        ("upload_create", [], {}, {}, "imaging.change_study", 405),  # POST only
        ("upload_detail", [upload.pk], {}, {}, "imaging.view_study", 200),
        # Sharing (sharing/): a link nobody made is not found, whoever asks; the staff's posts.
        ("share_open", ["no-such-token"], {}, {}, None, 404),
        ("share_image", ["no-such-token", 1], {}, {}, None, 404),
        ("share_download", ["no-such-token"], {}, {}, None, 404),
        ("share_opinion", ["no-such-token"], {}, {}, None, 405),  # POST only
        ("share_link_create", [r["linked"].pk], {}, {}, "imaging.change_study", 405),  # POST only
        ("consult_create", [r["linked"].pk], {}, {}, "imaging.change_study", 405),  # POST only
        ("consult_reports_seen", [r["linked"].pk], {}, {}, "imaging.view_study", 405),  # POST only
        ("share_link_revoke", [1], {}, {}, "imaging.change_study", 405),  # POST only
        ("study_report", [r["linked"].pk], {}, {}, "imaging.change_report", 405),  # POST only
        ("study_link", [r["unmatched"].pk], {}, {}, "imaging.change_study", 405),  # POST only
        ("series_split", [r["series"].pk], {}, {}, "imaging.change_study", 405),  # POST only
        ("series_thumbnail", [r["series"].pk], {}, {}, "imaging.view_series", 404),  # none rendered yet
        ("order_create", [], {}, {}, "imaging.add_imagingorder", 200),
        ("order_create", [], {**slot, "q": "nobody"}, {}, "imaging.add_imagingorder", 200),
        ("order_create", [], {**slot, "patient": patient.pk}, {}, "imaging.add_imagingorder", 200),
        ("order_station_options", [], {"procedure": order.procedure_id}, HTMX, "imaging.add_imagingorder", 200),
        ("order_slots", [], {"station": "", "day": ""}, HTMX, "imaging.view_imagingorder", 200),
        ("order_slots", [], {"order": order.pk, "station": 1, "day": "2026-11-23", "time": "9"}, HTMX,
         "imaging.view_imagingorder", 200),
        ("order_board", [], {}, {}, "imaging.view_imagingorder", 200),
        ("order_board", [], {"day": "2026-11-23"}, {**HTMX, "HTTP_HX_TARGET": "board"}, "imaging.view_imagingorder", 200),
        ("order_detail", [order.pk], {}, {}, "imaging.view_imagingorder", 200),
        ("order_card", [order.pk], {}, HTMX, "imaging.view_imagingorder", 200),
        ("order_status", [order.pk], {}, {}, "imaging.change_imagingorder", 405),  # POST only
        ("order_reschedule", [order.pk], {}, HTMX, "imaging.change_imagingorder", 200),
        ("order_reschedule", [order.pk], {}, {}, "imaging.change_imagingorder", 302),  # to the order page
        # The details of an order not yet done (bare); of a reported one (full), back to its page.
        ("order_edit", [order.pk], {}, {}, "imaging.change_imagingorder", 200 if editable else 302),
    ]  # fmt: skip


def ui_url_names():
    """The names of every page outside the API, DICOMweb, the admin and the login."""
    names = set()

    def walk(patterns, prefix=""):
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif (
                isinstance(pattern, URLPattern)
                and pattern.name
                and not route.startswith(("api/", "dicomweb/", "admin/"))
            ):
                names.add(pattern.name)

    walk(get_resolver().url_patterns)
    return names - {"login", "logout"}


def test_the_page_list_below_names_every_page_of_the_ui(bare):
    assert ui_url_names() == {name for name, *_ in cases(bare)}


@pytest.mark.parametrize("records", ["bare", "full"])
@pytest.mark.parametrize("group", ["front desk", "veterinarian", "radiologist", "admin"])
def test_every_page_renders_records_with_every_optional_field_empty_or_filled_for_every_role(
    client, staff, group, records, marked_templates, request
):
    bare = request.getfixturevalue(records)
    user = staff[group]
    client.force_login(user)
    seen, invalid = 0, []
    for name, args, query, headers, permission, allowed in cases(bare):
        url = reverse(name, args=args)
        response = client.get(url, query, **headers)
        expected = allowed if permission is None or user.has_perm(permission) else 403
        assert response.status_code == expected, (group, url, query, response.content[:3000])
        body = response.content.decode(errors="replace")
        invalid += [(url, query, found) for found in re.findall(re.escape(INVALID) + "[^⟧]*⟧", body)]
        seen += expected == 200
    assert invalid == []
    assert seen >= 10
    # Nothing a page shows was changed by showing it.
    assert Patient.objects.get(pk=bare["patient"].pk).name == ("Nobody" if records == "bare" else "Fully")


def test_the_home_page_and_the_animal_page_show_a_visit_without_a_vet(client, staff, bare):
    client.force_login(staff["front desk"])
    home = client.get(reverse("home"))
    page = client.get(reverse("patient_detail", args=[bare["patient"].pk]))
    assert home.status_code == page.status_code == 200
    assert "Nobody" in home.content.decode() and "Booked" in page.content.decode()
    assert Visit.objects.get(pk=bare["visit"].pk).vet is None


def test_the_order_page_counts_the_images_of_its_studies(client, staff, bare):
    client.force_login(staff["front desk"])
    body = client.get(reverse("order_detail", args=[bare["order"].pk])).content.decode()
    studies = body[body.index("<h2>Studies</h2>") :]
    row = studies[studies.index("<tbody>") : studies.index("</tbody>")]
    assert [cell for cell in row.replace("</td>", "<td>").split("<td>") if cell.strip() == "1"]
    assert Instance.objects.filter(series__study=bare["linked"]).count() == 1


def test_the_admin_lists_and_opens_every_record_with_empty_fields(client, staff, bare):
    client.force_login(staff["admin"])
    staff["admin"].is_superuser = True
    staff["admin"].save()
    for model in admin.site._registry:
        info = model._meta.app_label, model._meta.model_name
        assert client.get(reverse("admin:{}_{}_changelist".format(*info))).status_code == 200, info
        row = model.objects.first()
        if row is not None:
            assert (
                client.get(reverse("admin:{}_{}_change".format(*info), args=[row.pk])).status_code == 200
            ), info

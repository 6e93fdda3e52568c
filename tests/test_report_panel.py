"""Reporting beside the images (issue 16): which templates a study is offered
(imaging/reports/report_templates.py) and the ones migration 0013 seeds; the viewer's report
panel posting to the report view (JSON, errors by field, the panel drawn again); every opening of
the study page and of the viewer audited; "Open in viewer" from the patient, order and study pages."""

import json

import pytest
from django.urls import reverse
from pydicom.uid import generate_uid

from imaging.models import Instance, Procedure, Report, ReportTemplate, Series, Study
from imaging.reports.report_templates import report_templates_for
from imaging.reports.template_texts import templates_read
from vetclinic.audit.models import AuditEntry

pytestmark = pytest.mark.django_db


def study_with_images(*, patient=None, order=None, modality="DX", body_part="CHEST"):
    study = Study.objects.create(
        study_instance_uid=order.study_instance_uid if order else generate_uid(), patient=patient, order=order,
        link=Study.Link.ORDER if order else Study.Link.UNMATCHED, description="Thorax",
    )  # fmt: skip
    series = Series.objects.create(
        study=study,
        series_instance_uid=generate_uid(),
        modality=modality,
        body_part=body_part,
        series_number=1,
    )
    Instance.objects.create(
        series=series, sop_instance_uid=generate_uid(), sop_class_uid="1.2.840.10008.5.1.4.1.1.1",
        transfer_syntax_uid="1.2.840.10008.1.2.1", file_size=1, storage_key=f"panel/{series.pk}",
    )  # fmt: skip
    return study


def names(templates):
    return [t.name for t in templates]


# Template choice ---------------------------------------------------------------------------


def test_the_migration_seeds_every_template_with_its_procedure_and_species(dog, cat):
    rows = templates_read()
    seeded = {t.name: t for t in ReportTemplate.objects.select_related("procedure", "species")}
    assert sorted(seeded) == sorted(row["name"] for row in rows)
    for row in rows:
        template = seeded[row["name"]]
        assert template.procedure.code == row["procedure"]
        assert template.findings == row["findings"] and template.findings.strip()
        assert template.species == {"dog": dog, "cat": cat, "": None}[row["species"]]
    norberg = seeded["Hip dysplasia screening (Norberg angle), dog"]
    assert "Norberg angle: right ___°, left ___°" in norberg.findings


def test_a_dogs_thorax_order_offers_the_dogs_thorax_first_and_never_the_cats(make_patient, make_order):
    study = study_with_images(patient=(rex := make_patient("Rex")), order=make_order(rex, "DX-THX2"))
    choice = report_templates_for(study=study)
    # The procedure's (the dog's own wording), then the same modality and region (the 3-view one).
    assert names(choice.suggested) == [
        "Thorax radiographs, dog",
        "Thorax radiographs, metastasis check (3 views)",
    ]
    assert "Thorax radiographs, cat" in names(choice.others)
    assert len(choice.suggested) + len(choice.others) == ReportTemplate.objects.count()


def test_a_cats_thorax_order_offers_the_cats(make_patient, make_order, cat):
    tom = make_patient("Tom", species=cat)
    choice = report_templates_for(study=study_with_images(patient=tom, order=make_order(tom, "DX-THX2")))
    assert names(choice.suggested)[0] == "Thorax radiographs, cat"
    assert "Thorax radiographs, dog" not in names(choice.suggested)


def test_a_study_without_an_order_is_matched_by_its_series_modality_and_body_part(make_patient):
    # THORAX, as veterinary modalities send it, is the region of DICOM's CHEST.
    study = study_with_images(patient=make_patient("Rex"), body_part="THORAX")
    assert names(report_templates_for(study=study).suggested) == [
        "Thorax radiographs, dog", "Thorax radiographs, metastasis check (3 views)",
    ]  # fmt: skip
    head = study_with_images(modality="CT", body_part="SKULL")  # no animal: every species'
    assert names(report_templates_for(study=head).suggested) == ["CT head"]
    stifle = study_with_images(body_part="KNEE")
    assert names(report_templates_for(study=stifle).suggested) == ["Stifle, TPLO pre-operative planning, dog"]


def test_an_inactive_template_is_not_offered_and_one_for_any_study_comes_last(make_patient, make_order):
    ReportTemplate.objects.filter(name="Thorax radiographs, metastasis check (3 views)").update(active=False)
    ReportTemplate.objects.create(name="Free text", findings="Findings: ")
    ReportTemplate.objects.create(
        name="Thorax, our clinic", procedure=Procedure.objects.get(code="DX-THX2"), findings="Our words."
    )
    study = study_with_images(patient=(rex := make_patient("Rex")), order=make_order(rex, "DX-THX2"))
    choice = report_templates_for(study=study)
    assert names(choice.suggested) == ["Thorax radiographs, dog", "Thorax, our clinic", "Free text"]
    assert "Thorax radiographs, metastasis check (3 views)" not in names(choice.suggested + choice.others)


# The panel's posts -------------------------------------------------------------------------


@pytest.fixture
def vet_client(client, staff):
    client.force_login(staff["veterinarian"])
    return client


def panel_post(client, study, **data):
    return client.post(
        reverse("study_report", args=[study.pk]), {"loaded": "none", **data}, HTTP_ACCEPT="application/json"
    )


def test_the_viewer_shows_the_panel_with_the_templates_for_the_study(vet_client, make_patient, make_order):
    study = study_with_images(patient=(rex := make_patient("Rex")), order=make_order(rex, "DX-THX2"))
    page = vet_client.get(reverse("study_viewer", args=[study.pk])).content.decode()
    assert 'id="viewer-report"' in page and 'id="report-findings"' in page
    suggested = page.split('label="For this study"')[1].split("</optgroup>")[0]
    assert "Thorax radiographs, dog" in suggested and "cat" not in suggested
    texts = json.loads(
        page.split('id="viewer-report-templates" type="application/json">')[1].split("</script>")[0]
    )
    dog = ReportTemplate.objects.get(name="Thorax radiographs, dog")
    assert texts[str(dog.pk)] == {"findings": dog.findings, "conclusion": dog.conclusion}


def test_the_panel_saves_a_draft_signs_it_and_shows_it_read_only(vet_client, make_patient, make_order):
    study = study_with_images(patient=(rex := make_patient("Rex")), order=make_order(rex, "DX-THX2"))
    answer = panel_post(
        vet_client, study, action="save", findings="Bronchial pattern.\r\nVHS 10.1 v", conclusion=""
    )
    assert answer.status_code == 200, answer.content
    body = answer.json()
    report = Report.objects.get(study=study)
    assert (report.status, report.findings) == ("draft", "Bronchial pattern.\nVHS 10.1 v")
    assert body["message"] == "Draft saved." and body["errors"] == {}
    assert body["report"]["status"] == "draft" and body["report"]["loaded"] == report.updated.isoformat()
    assert 'value="finalize"' in body["panel"] and "Bronchial pattern." in body["panel"]

    answer = panel_post(vet_client, study, action="finalize", loaded=body["report"]["loaded"],
                        findings="Bronchial pattern.", conclusion="Bronchitis.")  # fmt: skip
    report.refresh_from_db()
    assert answer.status_code == 200 and (report.status, report.conclusion) == ("final", "Bronchitis.")
    panel = answer.json()["panel"]
    assert 'id="viewer-report-text"' in panel and "Bronchitis." in panel
    assert "Amend the signed report" in panel and 'value="finalize"' not in panel
    assert 'id="viewer-report-template"' not in panel  # no template over a signed report


def test_the_panel_gets_its_errors_by_field_and_keeps_the_text(vet_client, make_patient):
    study = study_with_images(patient=make_patient("Rex"))
    answer = panel_post(vet_client, study, action="finalize", findings="  ", conclusion="")
    assert answer.status_code == 400
    assert answer.json()["errors"] == {
        "findings": ["Write the findings or the conclusion before signing the report."]
    }
    assert not Report.objects.filter(study=study).exists()

    answer = panel_post(
        vet_client, study, action="save", findings="Mine.", loaded="2026-01-01T00:00:00+00:00"
    )
    assert answer.status_code == 409
    assert list(answer.json()["errors"]) == ["__all__"] and "Mine." in answer.json()["panel"]

    answer = panel_post(vet_client, study, action="nonsense", findings="x")
    assert answer.status_code == 400 and list(answer.json()["errors"]) == ["action"]

    panel_post(vet_client, study, action="finalize", findings="Normal.")
    loaded = Report.objects.get(study=study).updated.isoformat()
    answer = panel_post(
        vet_client, study, action="amend", loaded=loaded, findings="Normal thorax.", reason=""
    )
    assert answer.status_code == 400 and list(answer.json()["errors"]) == ["reason"]
    assert "Normal thorax." in answer.json()["panel"]  # the vet's text, not the signed one
    assert Report.objects.get(study=study).findings == "Normal."


def test_the_study_pages_form_still_redirects_to_the_study_page(vet_client, make_patient):
    study = study_with_images(patient=make_patient("Rex"))
    answer = vet_client.post(reverse("study_report", args=[study.pk]), {"loaded": "none", "action": "save",
                                                                       "findings": "Draft."})  # fmt: skip
    assert answer.status_code == 302 and answer["Location"].endswith(f"/studies/{study.pk}/#report")


def test_someone_who_may_not_report_sees_the_report_read_only_in_the_viewer(client, staff, make_patient):
    study = study_with_images(patient=make_patient("Rex"))
    client.force_login(staff["front desk"])
    page = client.get(reverse("study_viewer", args=[study.pk])).content.decode()
    assert "Not reported yet" in page and 'id="report-findings"' not in page
    assert panel_post(client, study, action="save", findings="x").status_code == 403


# Who opened what ---------------------------------------------------------------------------


def openings(study):
    return AuditEntry.objects.filter(action="open", object_id=str(study.pk), object_type__model="study")


def test_opening_the_viewer_and_the_study_page_records_one_entry_each(client, staff, make_patient):
    study = study_with_images(patient=make_patient("Rex"))
    vet = staff["veterinarian"]
    client.force_login(vet)
    assert client.get(reverse("study_viewer", args=[study.pk]), REMOTE_ADDR="192.0.2.7").status_code == 200
    assert [(e.user, e.channel, e.changes) for e in openings(study)] == [
        (vet, "ui", {"page": [None, "viewer"], "address": [None, "192.0.2.7"]})
    ]
    client.get(reverse("study_detail", args=[study.pk]), REMOTE_ADDR="192.0.2.8")
    assert [e.changes["page"][1] for e in openings(study)] == ["study", "viewer"]

    # The admin reads them on the study page ("Opened by", apart from the changes) and in the log.
    client.force_login(staff["admin"])
    page = client.get(reverse("study_detail", args=[study.pk])).content.decode()
    opened = page.split("<h2>Opened by")[1].split("</section>")[0]
    assert opened.count("<tr>") == 3  # the admin's own opening is the third
    assert "veterinarian" in opened and "192.0.2.7" in opened and "viewer" in opened
    history = page.split("<h2>History</h2>")
    assert len(history) == 1 or ">open<" not in history[1]
    log = client.get("/admin/audit/auditentry/", {"action": "open"}).content.decode()
    assert log.count("veterinarian") >= 2


def test_a_study_that_does_not_exist_records_no_opening(client, staff):
    client.force_login(staff["veterinarian"])
    assert client.get(reverse("study_viewer", args=[999999])).status_code == 404
    assert not AuditEntry.objects.filter(action="open").exists()


# Entry points ------------------------------------------------------------------------------


def test_the_patient_order_and_study_pages_open_the_viewer(client, staff, make_patient, make_order):
    rex = make_patient("Rex")
    order = make_order(rex, "DX-THX2")
    study = study_with_images(patient=rex, order=order)
    empty = Study.objects.create(study_instance_uid=generate_uid(), patient=rex)  # no images: no link
    client.force_login(staff["veterinarian"])
    link = f'href="{reverse("study_viewer", args=[study.pk])}"'
    for page in (reverse("patient_detail", args=[rex.pk]), reverse("order_detail", args=[order.pk]),
                 reverse("study_detail", args=[study.pk])):  # fmt: skip
        assert link in client.get(page).content.decode(), page
    assert (
        reverse("study_viewer", args=[empty.pk])
        not in client.get(reverse("patient_detail", args=[rex.pk])).content.decode()
    )


def test_the_reading_list_marks_the_studies_i_opened(client, staff, make_patient):
    seen, unseen = (
        study_with_images(patient=make_patient("Rex")),
        study_with_images(patient=make_patient("Max")),
    )
    client.force_login(staff["veterinarian"])
    client.get(reverse("study_viewer", args=[seen.pk]))
    rows = client.get(reverse("reading_list")).content.decode().split("<tr")[2:]
    marked = {row.split('/view"')[0].rsplit("/studies/", 1)[1]: "opened by you" in row for row in rows}
    assert marked == {str(seen.pk): True, str(unseen.pk): False}
    client.force_login(staff["radiologist"])  # someone else's opening is not mine
    assert "opened by you" not in client.get(reverse("reading_list")).content.decode()

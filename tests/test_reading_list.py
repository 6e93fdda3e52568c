"""The reading list (/reading/): each filter, the search box, today's and unread first, pages
whose query count does not grow with the rows."""

from datetime import timedelta

import pytest
from django.urls import reverse

from imaging.models import ImagingOrder, Report, Series, Study
from tests.conftest import CLINIC_TODAY

URL = reverse("reading_list")


@pytest.fixture
def vet_client(client, staff):
    client.force_login(staff["veterinarian"])
    return client


_uids = iter(range(1, 10**6))


def make_study(*, patient=None, modality="DX", sender="DRROOM", days_ago=0, report=None, **fields):
    n = next(_uids)
    fields.setdefault("study_date", CLINIC_TODAY - timedelta(days=days_ago))
    study = Study.objects.create(
        study_instance_uid=f"1.2.826.0.1.3680043.10.1.{n}", patient=patient,
        link=Study.Link.MANUAL if patient else Study.Link.UNMATCHED, description=f"Study {n}", **fields,
    )  # fmt: skip
    Series.objects.create(study=study, series_instance_uid=f"{study.study_instance_uid}.1", modality=modality,
                          received_from=sender)  # fmt: skip
    if report:
        Report.objects.create(study=study, status=report)
    return study


def listed(client, **params):
    response = client.get(URL, params)
    assert response.status_code == 200
    return [s.pk for s in response.context["page"].object_list]


def test_todays_studies_then_the_unread_then_the_newest(vet_client, make_patient):
    dog = make_patient()
    old_final = make_study(patient=dog, days_ago=30, report="final")
    old_unread = make_study(patient=dog, days_ago=40)
    yesterday_draft = make_study(patient=dog, days_ago=1, report="draft")
    today_final = make_study(patient=dog, report="final")
    today_unread = make_study(patient=dog)
    unlinked_unread = make_study(days_ago=2)
    assert listed(vet_client) == [
        today_unread.pk, today_final.pk,  # today's: unread first
        unlinked_unread.pk, old_unread.pk,  # then the unread, newest first
        yesterday_draft.pk, old_final.pk,  # then the rest, newest first
    ]  # fmt: skip


def test_date_range(vet_client):
    make_study(days_ago=10)
    inside = [make_study(days_ago=5), make_study(days_ago=3)]
    make_study(days_ago=1)
    found = listed(vet_client, date_from=str(CLINIC_TODAY - timedelta(days=5)),
                   date_to=str(CLINIC_TODAY - timedelta(days=3)))  # fmt: skip
    assert sorted(found) == sorted(s.pk for s in inside)
    assert len(listed(vet_client, date_from=str(CLINIC_TODAY - timedelta(days=1)))) == 1


def test_modality(vet_client, stations):
    us = make_study(modality="US", sender="USROOM")
    make_study(modality="DX")
    assert listed(vet_client, modality="US") == [us.pk]


def test_species(vet_client, make_patient, cat):
    make_study(patient=make_patient("Rex"))
    tom = make_study(patient=make_patient("Tom", species=cat))
    make_study()  # not linked: no species of the record
    assert listed(vet_client, species=cat.pk) == [tom.pk]


def test_station(vet_client, stations):
    ct = make_study(modality="CT", sender="CTROOM")
    make_study(modality="DX", sender="DRROOM")
    make_study(modality="CT", sender="ELSEWHERE")
    assert listed(vet_client, station="CTROOM") == [ct.pk]


def test_referring_vet_by_the_start_of_the_name_in_any_case(vet_client):
    jones = make_study(referring_physician="Jones^Anna")
    make_study(referring_physician="Smith^Jones")
    make_study()
    assert listed(vet_client, referring="jones") == [jones.pk]


def test_report_status(vet_client):
    unread = make_study()
    draft = make_study(report=Report.Status.DRAFT)
    final = make_study(report=Report.Status.FINAL)
    amended = make_study(report=Report.Status.AMENDED)
    assert listed(vet_client, report="unread") == [unread.pk]
    assert listed(vet_client, report="draft") == [draft.pk]
    assert sorted(listed(vet_client, report="final")) == sorted([final.pk, amended.pk])


def test_search_box_finds_animal_owner_accession_and_patient_id(vet_client, make_patient, make_owner):
    from patients.search import search_terms_refresh

    owner = make_owner("Pemberton")
    biscuit = make_patient("Biscuit", owner=owner)
    rex = make_patient("Rex")
    search_terms_refresh(patients=[biscuit, rex])
    by_biscuit = make_study(patient=biscuit)
    by_rex = make_study(patient=rex, accession_number="ACC77")
    unlinked = make_study(dicom_patient_id="EXT-991")
    assert listed(vet_client, q="bisc") == [by_biscuit.pk]
    assert listed(vet_client, q="pember") == [by_biscuit.pk]
    assert listed(vet_client, q="ACC77") == [by_rex.pk]
    assert listed(vet_client, q="acc77") == [by_rex.pk]
    assert listed(vet_client, q=rex.patient_id) == [by_rex.pk]
    assert listed(vet_client, q="EXT-991") == [unlinked.pk]
    assert listed(vet_client, q="nobody") == []
    page = vet_client.get(URL, {"q": "bisc"}).content.decode()
    assert "Biscuit" in page and "Pemberton" in page


def test_priority_shown_and_the_row_opens_the_viewer(vet_client, make_patient, make_order):
    dog = make_patient()
    order = make_order(dog, priority=ImagingOrder.Priority.STAT)
    study = make_study(patient=dog, order=order)
    page = vet_client.get(URL).content.decode()
    assert "Emergency (STAT)" in page
    assert f'href="{reverse("study_viewer", args=[study.pk])}"' in page


def test_a_bad_value_is_said_on_the_form_and_the_rest_still_filters(vet_client):
    make_study(report="final")
    unread = make_study()
    response = vet_client.get(
        URL, {"date_from": "yesterday", "report": "unread", "modality": "XX", "station": "NOPE", "page": "x"}
    )
    assert response.status_code == 200
    errors = response.context["filters"].errors
    assert set(errors) == {"date_from", "modality", "station"}
    assert [s.pk for s in response.context["page"].object_list] == [unread.pk]
    assert "Enter a valid date." in response.content.decode()


@pytest.mark.parametrize("rows", [3, 120])
def test_queries_per_page_do_not_grow_with_the_rows(vet_client, make_patient, make_owner, make_order,
                                                    django_assert_max_num_queries, rows):  # fmt: skip
    owner = make_owner()
    for i in range(rows):
        dog = make_patient(f"Dog{i}", owner=owner) if i % 10 == 0 else dog  # noqa: F821
        make_study(patient=dog, days_ago=i % 7, report="draft" if i % 3 == 0 else None,
                   referring_physician="Jones")  # fmt: skip
    # Session, user, permissions (2), groups and the reconciliation count (the header), the count,
    # the page's ids, its rows, their ownerships with owners, the form's choices (modalities,
    # species, stations), which of the rows the vet opened (imaging/studies/opened.py) ...: 17
    # whatever the number of rows.
    with django_assert_max_num_queries(17):
        response = vet_client.get(URL, {"referring": "jon", "page": 2 if rows > 50 else 1})
    assert response.status_code == 200
    assert len(response.context["page"].object_list) == min(rows, 50)


def test_login_required(client):
    assert client.get(URL).status_code == 302

"""QIDO-RS (PS3.18 10.6) against a live server with dicomweb-client, the client viewers' Python
side uses: the same matching and veterinary attributes as C-FIND, includefield, limit/offset,
the Warning header, 400s naming the parameter, and who may search."""

from urllib.parse import urlparse

import pytest
import requests
from dicomweb_client.api import DICOMwebClient

from integrations.api.clients import api_client_create
from tests.archive import archive  # noqa: F401  (a fixture)
from vetclinic.audit.models import AuditEntry

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def key(reference_data, actor):
    return api_client_create(actor=actor, name="Viewer", scopes=["studies:read"])[1]


@pytest.fixture
def web(live_server, key, archive):  # noqa: F811
    return DICOMwebClient(url=live_server.url + "/dicomweb", headers={"Authorization": f"Bearer {key}"})


def value(answer, keyword_tag):
    return answer[keyword_tag].get("Value", [None])[0]


STUDY_UID, SERIES_UID, SOP_UID = "0020000D", "0020000E", "00080018"


def test_a_study_search_by_name_date_range_and_modality_answers_the_records_vet_attributes(web, archive):  # noqa: F811
    found = web.search_for_studies(
        search_filters={"PatientName": "hart*", "StudyDate": "20250101-20251231", "ModalitiesInStudy": "CT"}
    )
    assert [value(s, STUDY_UID) for s in found] == [archive.thorax]
    study = found[0]
    assert study["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Hartley^Biscuit"}]}
    assert value(study, "00102201") == "Canis lupus familiaris"  # PatientSpeciesDescription
    assert value(study, "00102292") == "Labrador retriever"  # the record's, not the headers' Beagle
    assert value(study, "00102203") == "ALTERED"
    assert study["00102297"] == {"vr": "PN", "Value": [{"Alphabetic": "Hartley^Jo"}]}
    assert (value(study, "00080061"), value(study, "00201206"), value(study, "00201208")) == ("CT", 2, 3)
    assert value(study, "00081190").endswith(f"/dicomweb/studies/{archive.thorax}")  # RetrieveURL
    entry = AuditEntry.objects.get(action="query")
    assert (entry.channel, entry.actor, entry.changes["answers"]) == ("api", "Viewer", [None, 1])


def test_tags_uid_lists_and_an_unlinked_study_with_its_headers(web, archive):  # noqa: F811
    found = web.search_for_studies(search_filters={"00100020": "EXT-9"})
    assert [value(s, STUDY_UID) for s in found] == [archive.cat]
    assert found[0]["00100010"]["Value"] == [{"Alphabetic": "Ng^Tiddles"}]
    assert (value(found[0], "00102292"), value(found[0], "00102201")) == ("Siamese", "Felis catus")
    both = web.search_for_studies(search_filters={"StudyInstanceUID": f"{archive.cat},{archive.abdomen}"})
    assert sorted(value(s, STUDY_UID) for s in both) == sorted([archive.cat, archive.abdomen])
    assert web.search_for_studies(search_filters={"PatientBreedDescription": "Beagle"}) == []  # 204: no match


def test_includefield_limit_and_offset(web, archive):  # noqa: F811
    everything = web.search_for_studies(fields=["all"])
    assert [value(s, STUDY_UID) for s in everything] == [archive.cat, archive.thorax, archive.abdomen]
    # Everything held: the record's species code for a linked study; the headers' text for the other.
    assert "00102202" in everything[1] and "00102202" not in everything[0]
    assert value(everything[0], "00080054") == "VETPACS"  # RetrieveAETitle, not a default
    some = web.search_for_studies(limit=1, offset=1, fields=["BodyPartExamined", "00081030"])
    assert [value(s, STUDY_UID) for s in some] == [archive.thorax]
    assert value(some[0], "00081030") == "Thorax CT"
    assert "00102202" not in some[0]  # not asked, not a default


def test_series_and_instances_at_every_path(web, archive):  # noqa: F811
    series = web.search_for_series(study_instance_uid=archive.thorax)
    assert [value(s, SERIES_UID) for s in series] == archive.series[:2]
    assert [value(s, "00201209") for s in series] == [2, 1]  # NumberOfSeriesRelatedInstances
    all_series = web.search_for_series(search_filters={"Modality": "US"})
    assert [value(s, SERIES_UID) for s in all_series] == [archive.series[2]]
    assert value(all_series[0], STUDY_UID) == archive.abdomen  # all series carry their study's attributes
    assert all_series[0]["00100010"]["Value"] == [{"Alphabetic": "Hartley^Biscuit"}]
    instances = web.search_for_instances(
        study_instance_uid=archive.thorax, series_instance_uid=archive.series[0]
    )
    assert [value(i, "00200013") for i in instances] == [1, 2]  # InstanceNumber
    assert (value(instances[0], "00280010"), value(instances[0], "00280011")) == (128, 128)
    in_study = web.search_for_instances(study_instance_uid=archive.thorax)
    assert len(in_study) == 3
    one = web.search_for_instances(search_filters={"SOPInstanceUID": value(instances[1], SOP_UID)})
    assert [value(i, SOP_UID) for i in one] == [value(instances[1], SOP_UID)]
    assert value(one[0], "00081190").endswith(
        f"/studies/{archive.thorax}/series/{archive.series[0]}/instances/{value(instances[1], SOP_UID)}"
    )


def test_fuzzymatching_and_what_we_do_not_match_on_are_said_in_a_warning(live_server, key, archive):  # noqa: F811
    response = requests.get(
        live_server.url + "/dicomweb/studies",
        params={"PatientName": "hart*", "fuzzymatching": "true", "OperatorsName": "x"},
        headers={"Authorization": f"Bearer {key}", "Accept": "application/dicom+json"}, timeout=30,
    )  # fmt: skip
    assert response.status_code == 200 and response.headers["Content-Type"].startswith(
        "application/dicom+json"
    )
    assert "fuzzymatching parameter is not supported" in response.headers["Warning"]
    assert "ignored: OperatorsName" in response.headers["Warning"]
    assert response.headers["Warning"].startswith("299 ")


@pytest.mark.parametrize(
    "params, field",
    [
        ({"StudyDate": "2025-01-01"}, "StudyDate"),
        ({"00080020": "2025x"}, "00080020"),
        ({"NotAnAttribute": "1"}, "NotAnAttribute"),
        ({"SOPInstanceUID": "1.2.3"}, "SOPInstanceUID"),
        ({"limit": "-1"}, "limit"),
        ({"offset": "many"}, "offset"),
        ({"includefield": "Nonsense"}, "includefield"),
        ({"fuzzymatching": "maybe"}, "fuzzymatching"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(live_server, key, archive, params, field):  # noqa: F811
    response = requests.get(live_server.url + "/dicomweb/studies", params=params,
                            headers={"Authorization": f"Bearer {key}"}, timeout=30)  # fmt: skip
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [field]


def test_a_key_without_studies_read_is_refused_and_no_key_is_401(live_server, reference_data, actor, archive):  # noqa: F811
    _, other = api_client_create(actor=actor, name="PMS", scopes=["patients:read"])
    web = DICOMwebClient(url=live_server.url + "/dicomweb", headers={"Authorization": f"Bearer {other}"})
    with pytest.raises(requests.HTTPError) as refused:
        web.search_for_studies()
    assert refused.value.response.status_code == 403
    assert "studies:read" in refused.value.response.json()["error"]["message"]
    with pytest.raises(requests.HTTPError) as anonymous:
        DICOMwebClient(url=live_server.url + "/dicomweb").search_for_studies()
    assert anonymous.value.response.status_code == 401
    assert not AuditEntry.objects.filter(action="query").exists()


def test_past_the_1000_answer_cap_the_answer_is_cut_with_a_warning_and_a_larger_limit_is_clamped(
    live_server, key
):
    from imaging.models import Study
    from integrations.dicomweb.qido import MAX_RESULTS

    assert MAX_RESULTS == 1000
    Study.objects.bulk_create(
        Study(study_instance_uid=f"1.2.826.0.1.3680043.10.1.{n}", dicom_patient_name="CAP^TEST")
        for n in range(1001)
    )
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/dicom+json"}

    def search(**params):
        return requests.get(f"{live_server.url}/dicomweb/studies", params=params, headers=headers, timeout=60)

    warning = f'299 {urlparse(live_server.url).netloc}: "There are additional results that can be requested."'
    for response in (search(), search(limit=5000), search(limit=1001)):  # no limit, or one over the cap
        assert response.status_code == 200
        assert len(response.json()) == 1000
        assert response.headers["Warning"] == warning  # PS3.18 8.3.4.4.1
    rest = search(offset=1000, limit=5000)
    assert rest.status_code == 200 and len(rest.json()) == 1 and "Warning" not in rest.headers
    answered = {s["0020000D"]["Value"][0] for s in search().json()} | {rest.json()[0]["0020000D"]["Value"][0]}
    assert len(answered) == 1001  # the cut answer and the rest are all of them, none twice

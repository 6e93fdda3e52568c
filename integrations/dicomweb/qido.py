"""QIDO-RS, search (PS3.18 10.6): a thin adapter over the archive's query service
(imaging/archive/query.py), the one the DICOM listener's C-FIND uses, so both match alike and
answer the same veterinary attributes.

Query parameters (PS3.18 8.3.4): ``{attribute}={value}`` by keyword or tag (``PatientName=Hart*``,
``00100010=Hart*``), matched as C-FIND matches (wildcards, ranges, UID lists); ``includefield``
(repeatable, comma-separated, ``all``); ``limit`` and ``offset``; ``fuzzymatching`` (not
supported: said in a Warning header, PS3.18 8.3.4.2). A bad parameter is a 400 naming it.
"""

from collections.abc import Iterable
from typing import Any

from django.db import DatabaseError
from django.http import HttpResponse
from django.urls import reverse
from pydicom.datadict import keyword_for_tag, tag_for_keyword
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response

from imaging.archive.query import Found, Query, Root, archive_find, retrieve_ae_title
from imaging.dicom.records.datasets import Elements
from imaging.dicom.records.dicom_json import elements_json
from imaging.dicom.records.matching import MatchingError
from imaging.dicom.records.query_answers import Level, answer_build
from integrations.api.auth import actor_for
from integrations.api.errors import error_body
from integrations.dicomweb.base import DICOM_JSON, DicomWebView

# Parameters that are not attributes (PS3.18 8.3.3, 8.3.4); accept and charset are content
# negotiation, which the response's one media type answers.
CONTROL = {"limit", "offset", "includefield", "fuzzymatching", "accept", "charset"}
# Most answers a request gets when it sets no limit, or a larger one (PS3.18 8.3.4.4: the origin
# server may limit them, and then says so in a Warning header).
MAX_RESULTS = 1000
# Keys whose values a client may list with commas (PS3.18 8.3.4.1: UID lists; the modalities).
COMMA_LISTS = {"StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "ModalitiesInStudy"}
# What each level answers by default (PS3.18 10.6.3.3.1, Tables 10.6.3-3 to -5, those we hold),
# with the veterinary patient attributes C-FIND answers too.
STUDY_DEFAULT = (
    "StudyDate", "StudyTime", "AccessionNumber", "InstanceAvailability", "ModalitiesInStudy",
    "ReferringPhysicianName", "RetrieveURL", "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
    "StudyInstanceUID", "StudyID", "StudyDescription", "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances", "PatientSpeciesDescription", "PatientBreedDescription",
    "PatientSexNeutered", "ResponsiblePerson", "ResponsiblePersonRole",
)  # fmt: skip
SERIES_DEFAULT = ("Modality", "SeriesDescription", "RetrieveURL", "SeriesInstanceUID", "SeriesNumber",
                  "NumberOfSeriesRelatedInstances", "BodyPartExamined")  # fmt: skip
INSTANCE_DEFAULT = ("SOPClassUID", "SOPInstanceUID", "InstanceAvailability", "RetrieveURL", "InstanceNumber",
                    "Rows", "Columns", "NumberOfFrames")  # fmt: skip
# Everything we hold, for includefield=all.
EVERYTHING = (
    *STUDY_DEFAULT, *SERIES_DEFAULT, *INSTANCE_DEFAULT, "PatientSpeciesCodeSequence", "PatientBreedCodeSequence",
    "BreedRegistrationSequence", "ResponsibleOrganization", "OtherPatientIDsSequence", "StationName",
    "RetrieveAETitle", "QueryRetrieveLevel",
)  # fmt: skip
RETRIEVE_URL = 0x00081190


def _keyword(name: str) -> str | None:
    """The keyword a parameter names, by keyword or by tag (``00100010``), or None."""
    if len(name) == 8 and all(c in "0123456789abcdefABCDEF" for c in name):
        return keyword_for_tag(int(name, 16)) or None
    return name if tag_for_keyword(name) is not None else None


def _bad(parameter: str, message: str) -> exceptions.ValidationError:
    return exceptions.ValidationError({parameter: [message]})


def _count(request: Request, name: str) -> int | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return None
    if not text.isdigit():
        raise _bad(name, f"{name} must be a whole number, 0 or more.")
    return int(text)


class Search(DicomWebView):
    """GET a QIDO-RS search resource. Subclasses say the level, and which levels' default
    attributes an answer carries (the levels the path does not fix, PS3.18 10.6.3.3.1)."""

    level: Level
    defaults: tuple[str, ...]

    def get(
        self, request: Request, study: str | None = None, series: str | None = None
    ) -> Response | HttpResponse:
        keys, names, unsupported = self.keys_read(request)
        if study is not None:
            keys["StudyInstanceUID"] = study
        if series is not None:
            keys["SeriesInstanceUID"] = series
        included, everything = self.included(request)
        for keyword in (*self.defaults, *included):
            keys.setdefault(keyword, None)
        limit, offset = _count(request, "limit"), _count(request, "offset") or 0
        warnings = []
        if request.query_params.get("fuzzymatching", "").lower() not in ("", "false", "true"):
            raise _bad("fuzzymatching", "fuzzymatching is true or false.")
        if request.query_params.get("fuzzymatching", "").lower() == "true":
            warnings.append(
                "The fuzzymatching parameter is not supported. Only literal matching has been performed."
            )
        if limit is None or limit > MAX_RESULTS:
            limit = MAX_RESULTS
        query = Query(level=self.level.value, keys=keys, root=Root.STUDY, limit=limit, offset=offset)
        try:
            found = archive_find(actor=actor_for(request), query=query)
        except MatchingError as error:
            raise _bad(names.get(error.keyword, error.keyword), str(error)) from None
        except DatabaseError:
            return Response(error_body(503, "The archive database is unavailable; try again."), status=503)
        unsupported += [names.get(k, k) for k in found.unsupported]
        if unsupported:
            warnings.append(f"The following attributes are not supported as query parameters and were "
                            f"ignored: {', '.join(unsupported)}.")  # fmt: skip
        if found.more:
            warnings.append("There are additional results that can be requested.")
        response = self.answers(request, found, set(keys), everything)
        if warnings:  # PS3.18 8.3.4: 299 {service}: "{text}"
            response["Warning"] = ", ".join(f'299 {request.get_host()}: "{text}"' for text in warnings)
        return response

    def keys_read(self, request: Request) -> tuple[dict[str, str | None], dict[str, str], list[str]]:
        """(keyword -> matching value, keyword -> the parameter's own name, parameters we do not
        match on: sequence paths). An unknown attribute is a 400 naming it."""
        keys: dict[str, str | None] = {}
        names: dict[str, str] = {}
        unsupported = []
        for name in request.query_params:
            if name.lower() in CONTROL:
                continue
            if "." in name:  # a sequence path (PS3.18 8.3.4.1): not matched
                unsupported.append(name)
                continue
            keyword = _keyword(name)
            if keyword is None:
                raise _bad(name, f"{name} is not a DICOM attribute keyword or tag.")
            values = [v for v in request.query_params.getlist(name) if v != ""]
            if keyword in COMMA_LISTS:
                values = [part for v in values for part in v.split(",") if part]
            keys[keyword] = "\\".join(values) if values else None
            names[keyword] = name
        return keys, names, unsupported

    def included(self, request: Request) -> tuple[list[str], bool]:
        """(the keywords includefield names, whether it said ``all``)."""
        included = []
        for value in request.query_params.getlist("includefield"):
            for name in filter(None, (part.strip() for part in value.split(","))):
                if name == "all":
                    return list(EVERYTHING), True
                keyword = _keyword(name)
                if keyword is None:
                    raise _bad("includefield", f"{name} is not a DICOM attribute keyword or tag.")
                included.append(keyword)
        return included, False

    def answers(
        self, request: Request, found: Found, asked: Iterable[str], everything: bool
    ) -> Response | HttpResponse:
        if not found.answers:
            # No match: 204 with no body (PS3.18 8.3.4.4.1; CP-2473 would make it 200 with
            # an empty body, as C-FIND's plain Success).
            return HttpResponse(status=204)
        wanted = {tag for tag in (tag_for_keyword(k) for k in asked) if tag is not None}
        base = request.build_absolute_uri(reverse("dicomweb:studies"))
        ae_title = retrieve_ae_title()
        body: list[dict[str, Any]] = []
        for answer in found.answers:
            elements = answer_build(found.level, answer, retrieve_ae_title=ae_title)
            elements.put("RetrieveURL", _retrieve_url(base, found.level, elements))
            if not everything:
                elements = Elements({tag: value for tag, value in elements.items() if tag in wanted})
            body.append(elements_json(elements))
        return Response(body, content_type=DICOM_JSON)


def _retrieve_url(studies: str, level: Level, elements: Elements) -> str:
    """Where WADO-RS retrieves the answer (Retrieve URL (0008,1190), PS3.18 10.6.3.3.1)."""
    url = f"{studies}/{elements[0x0020000D][1]}"
    if level.depth >= Level.SERIES.depth:
        url += f"/series/{elements[0x0020000E][1]}"
    if level is Level.IMAGE:
        url += f"/instances/{elements[0x00080018][1]}"
    return url


class StudySearch(Search):
    """GET /studies (PS3.18 10.6.1: search for studies)."""

    level = Level.STUDY
    defaults = STUDY_DEFAULT


class SeriesSearch(Search):
    """GET /series and /studies/{study}/series: all series carry their study's attributes too."""

    level = Level.SERIES

    def get(
        self, request: Request, study: str | None = None, series: str | None = None
    ) -> Response | HttpResponse:
        self.defaults = SERIES_DEFAULT if study is not None else (*STUDY_DEFAULT, *SERIES_DEFAULT)
        return super().get(request, study, series)


class InstanceSearch(Search):
    """GET /instances, /studies/{study}/instances, /studies/{study}/series/{series}/instances."""

    level = Level.IMAGE

    def get(
        self, request: Request, study: str | None = None, series: str | None = None
    ) -> Response | HttpResponse:
        self.defaults = INSTANCE_DEFAULT
        if series is None:
            self.defaults = (*SERIES_DEFAULT, *self.defaults)
        if study is None:
            self.defaults = (*STUDY_DEFAULT, *self.defaults)
        return super().get(request, study, series)

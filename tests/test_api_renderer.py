"""integrations/api/renderers.py writes the bytes DRF's own JSON renderer writes."""

import json
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal

import pytest
from django.utils.translation import gettext_lazy
from rest_framework.renderers import JSONRenderer as DRFRenderer

from integrations.api.renderers import JSONRenderer

PAYLOADS = [
    {
        "results": [
            {
                "id": 1,
                "name": "Biscuit",
                "owners": [{"owner": 7, "primary": True}],
                "weight_kg": "12.500",
                "updated": "2026-11-23T10:02:11.123456Z",
                "notes": None,
                "deceased": False,
            }
        ],
        "next": None,
    },
    {
        "utc": datetime(2026, 11, 23, 10, 2, 11, 123456, tzinfo=UTC),
        "plain": datetime(2026, 11, 23, 10, 2, 11),
        "london": datetime(2026, 6, 1, 9, 0, tzinfo=timezone(timedelta(hours=1))),
        "day": date(2026, 2, 28),
        "at": time(10, 2, 11, 500000),
        "noon": time(12, 0),
    },
    {
        "amount": Decimal("12.500"),
        "uid": uuid.UUID("5b0f7c1e-0000-4000-8000-000000000001"),
        "lazy": gettext_lazy("This field is required."),
    },
    {
        "text": 'Café Ünter – 犬 \u2028 line \u2029 para " quote \\ slash / \t tab \x01',
        1: "int key",
        "float": 31.4,
        "negative": -0.001,
    },
    {"big": 2**70, "nested": [[1, [2, [3]]], {}], "empty": ""},
    [],
    "a string",
]


@pytest.mark.parametrize("data", PAYLOADS)
def test_the_same_bytes_as_drfs_renderer(data):
    assert JSONRenderer().render(data) == DRFRenderer().render(data)


def test_a_float_with_an_exponent_is_the_same_number_spelt_shorter():
    """The one difference: orjson writes 1e-7 where Python writes 1e-07 (the API itself sends
    decimals as strings, and no float of its own)."""
    data = {"small": 1e-07, "large": 1.5e300}
    assert json.loads(JSONRenderer().render(data)) == json.loads(DRFRenderer().render(data)) == data


def test_pretty_printing_and_nothing_are_drfs_too():
    data = {"a": [1, 2]}
    assert JSONRenderer().render(data, "application/json; indent=4") == DRFRenderer().render(
        data, "application/json; indent=4"
    )
    assert JSONRenderer().render(None) == b""


def test_what_drf_cannot_write_fails_as_it_did():
    with pytest.raises(TypeError):
        JSONRenderer().render({"x": object()})

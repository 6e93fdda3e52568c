"""The hl7apy structure check and the shapes it remembers (integrations/hl7/messages.py)."""

import random
import re

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from integrations.hl7 import messages
from integrations.hl7.messages import HL7Error, _shape, header_read, segments, structure_check
from tests import hl7_samples as samples

SAMPLES = [
    samples.adt("A04", "M1"),
    samples.adt("A08", "M2", version="2.3.1"),
    samples.adt("A31", "M3", version="2.6"),
    samples.a40("M4"),
    samples.order("O1"),
    samples.order("O2", message_type="OMI^O23^OMI_O23", version="2.5.1"),
]


@pytest.fixture
def hl7apy_calls(monkeypatch):
    """Count the messages handed to hl7apy (nothing is remembered from earlier tests:
    conftest.nothing_kept)."""
    calls = []

    def counting(text, **options):
        calls.append(text)
        return parse_message(text, **options)

    monkeypatch.setattr(messages, "parse_message", counting)
    return calls


def shape(text):
    return _shape(segments(text), header_read(text))


def test_a_shape_hl7apy_accepted_is_not_parsed_again(hl7apy_calls):
    structure_check(samples.adt("A08", "S1"), header_read(samples.adt("A08", "S1")))
    other_values = samples.adt("A08", "S2", pms_id="PMS-9", name="Okafor^Rocco", born="20200101", sex="F")
    structure_check(other_values, header_read(other_values))
    assert len(hl7apy_calls) == 1
    another_type = samples.adt("A08", "S3").replace("ADT^A08", "ADT^A31")
    structure_check(another_type, header_read(another_type))
    assert len(hl7apy_calls) == 2


def test_a_refused_structure_is_refused_every_time_with_hl7apys_reason(hl7apy_calls):
    bad = samples.adt("A08", "B1").replace("EVN|", "E1N|")
    for _ in range(2):
        with pytest.raises(HL7Error) as error:
            structure_check(bad, header_read(bad))
        assert "E1N" in error.value.args[0] and error.value.code == 100
    assert len(hl7apy_calls) == 2


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t.replace("EVN|", "ZVN|"),  # a segment name
        lambda t: t.replace("ADT^A08", "ADT^A08^ADT_A01"),  # MSH-9 (the structure hl7apy loads)
        lambda t: t.replace("|2.5.1", "|2.4"),  # MSH-12
        lambda t: t.replace("|Hartley^Biscuit|", "|Hartley^^Biscuit|"),  # a component more
        lambda t: t.replace("|Hartley^Biscuit|", "|Hartley~Biscuit|"),  # a repetition
        lambda t: t.replace("|Hartley^Biscuit|", "|Hartley&X^Biscuit|"),  # a subcomponent
        lambda t: t.replace("|20190402|", "||"),  # a value left out
        lambda t: t.replace("|20190402|", "| |"),  # only a blank (hl7apy skips it)
        lambda t: t + "NTE|1||x\r",  # a segment more
    ],
)  # fmt: skip
def test_the_shape_tells_apart_what_hl7apy_looks_at(change):
    text = samples.adt("A08", "K1")
    assert shape(change(text)) != shape(text)


def test_values_do_not_change_hl7apys_verdict_within_a_shape():
    """What remembering shapes rests on: in tolerant mode hl7apy keeps a value that does not
    fit its data type as text. Checked against this hl7apy, with odd values of every kind."""
    rng = random.Random(7)
    alphabet = "0123456789+-.eE:T /abcXYZ\\ \t１é€"

    def odd(match):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 16)))
        return match.group() if not match.group().strip() else (value if value.strip() else value + "7")

    for text in SAMPLES:
        lines = segments(text)
        for _ in range(25):
            changed = []
            for line in lines:
                fields = line.split("|")
                keep = (0, 1, 8, 11) if line.startswith("MSH") else (0,)
                changed.append(
                    "|".join(f if n in keep else re.sub(r"[^^~&]+", odd, f) for n, f in enumerate(fields))
                )
            mutated = "\r".join(changed)
            assert shape(mutated) == shape(text)
            parse_message(mutated, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=False)  # no error


def test_the_value_patterns_kept_per_encoding_are_bounded_whatever_senders_choose():
    text = samples.adt("A08", "M9")
    chosen = "!#$%()*+,-./:;<=>?@[]_{}`'\"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij"
    for n, c in enumerate(chosen):  # MSH-2 with another subcomponent separator each time
        other = text.replace("MSH|^~\\&|", f"MSH|^~\\{c}|", 1)
        assert header_read(other).encoding == f"^~\\{c}", n
        shape(other)
    assert len(chosen) > 64 and len(messages.value_patterns) <= 64

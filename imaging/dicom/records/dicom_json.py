"""Elements as the DICOM JSON Model (PS3.18 F.2), written directly: QIDO-RS answers a few
dozen attributes per match, and going through pydicom's Dataset.to_json_dict for each cost more
than the query."""

from typing import Any

from imaging.dicom.records.datasets import Elements

# Value representations written as JSON numbers (PS3.18 F.2.3.1): the binary ones and IS/DS.
NUMBER_VRS = {"US", "SS", "UL", "SL", "FL", "FD", "UV", "SV"}
NAME_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")  # PS3.18 F.2.2: a PN's component groups


def _number(text: str, vr: str) -> int | float | str:
    try:
        return int(text) if vr == "IS" else float(text)
    except ValueError:
        return text  # a malformed stored value: shown as it is rather than lost


def _values(vr: str, value: Any) -> list[Any]:
    if vr in NUMBER_VRS:
        return list(value) if isinstance(value, (list, tuple)) else [value]
    texts = str(value).split("\\")
    if vr == "PN":
        # {"Alphabetic": "Hartley^Biscuit"}: each non-empty group of a name (F.2.2).
        return [{group: text for group, text in zip(NAME_GROUPS, name.split("="), strict=False) if text}
                for name in texts]  # fmt: skip
    if vr in ("IS", "DS"):
        return [_number(text.strip(), vr) for text in texts]
    return texts


def elements_json(elements: Elements) -> dict[str, dict[str, Any]]:
    """``{"0020000D": {"vr": "UI", "Value": ["1.2…"]}, …}`` in tag order; an empty attribute
    has its VR and no Value (PS3.18 F.2.5), a sequence a list of items (F.2.6)."""
    out: dict[str, dict[str, Any]] = {}
    for tag in sorted(elements):
        vr, value = elements[tag]
        attribute: dict[str, Any] = {"vr": vr}
        if vr == "SQ":
            if value:
                attribute["Value"] = [elements_json(item) for item in value]
        elif value is not None and value != "":
            attribute["Value"] = _values(vr, value)
        out[f"{tag:08X}"] = attribute
    return out

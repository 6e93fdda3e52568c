"""DICOM person names (PN), built in one place: the animal's Patient's Name and the owner's
Responsible Person, for the record, its search key, the worklist, the images we rewrite and
HL7 PID-5 alike.

PS3.3 C.7.1.1.1.1: an animal's Patient's Name is the responsible party's family name (the
owner's, or the organisation's name) as the family name component and the animal's name as
the given name component: ``Hartley^Biscuit``; an animal with no owner is ``^Stray``.

PS3.5 6.2 (Table 6.2-1, PN): ``^`` separates components and ``=`` component groups, ``\\``
separates values, and CR, LF, FF are not allowed: none may stand inside a name, so each is
written as a space. A component group is at most 64 characters: the animal's name is kept
(it is what the radiographer checks, and what the ingest compares), the owner's name is cut
to the room left.
"""

PN_GROUP_MAX = 64  # characters per component group (PS3.5 Table 6.2-1)
_NOT_IN_A_COMPONENT = str.maketrans(dict.fromkeys("^=\\\r\n\f\t", " "))


def _component(text: str | None) -> str:
    return (text or "").translate(_NOT_IN_A_COMPONENT).strip()


def given_component(given: str | None) -> str:
    """The given name component as ``person_name`` writes it (the animal's name, for one)."""
    return _component(given)[: PN_GROUP_MAX - 1].rstrip()


def person_name(family: str | None, given: str | None) -> str:
    """``Family^Given`` as one PN component group of at most 64 characters: the given name
    kept whole (up to 63), the family name cut to fit."""
    given = given_component(given)
    family = _component(family)[: PN_GROUP_MAX - 1 - len(given)].rstrip()
    return f"{family}^{given}"


def patient_name(owner_family: str | None, animal_name: str | None) -> str:
    """The animal's Patient's Name: ``OwnerFamily^AnimalName`` (PS3.3 C.7.1.1.1.1);
    ``owner_family`` is Owner.dicom_family_name ("" with no owner)."""
    return person_name(owner_family, animal_name)


def name_key(owner_family: str | None, animal_name: str | None) -> str:
    """Patient.dicom_name_key: the Patient's Name in capitals, as the worklist matches it
    (person names match case-insensitively, PS3.4 C.2.2.2.1)."""
    return patient_name(owner_family, animal_name).upper()[:130]

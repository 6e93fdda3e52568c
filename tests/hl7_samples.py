"""Realistic HL7 v2 messages a veterinary PMS sends, built field by field so that PID-35/36
land where the standard puts them."""


def segment(name, fields):
    """``fields``: {position: value}; MSH positions count MSH-1 (the separator) as 1."""
    last = max(fields)
    values = [fields.get(i, "") for i in range(1 if name != "MSH" else 2, last + 1)]
    return name + "|" + "|".join(values)


def msh(message_type, control_id, version="2.5.1", sender="VETPMS", facility="ASHFORD"):
    return segment("MSH", {2: "^~\\&", 3: sender, 4: facility, 5: "VETPACS", 6: "ASHFORD", 7: "20261123101500",
                           9: message_type, 10: control_id, 11: "P", 12: version})  # fmt: skip


def pid(pms_id="PMS-1001", name="Hartley^Biscuit", born="20190402", sex="M", species="448771007^Canis lupus familiaris^SCT",
        breed="62137007^Labrador retriever^SCT", account="ACC-77", strain=""):  # fmt: skip
    return segment("PID", {1: "1", 3: f"{pms_id}^^^VETPMS^PI" if pms_id else "", 5: name, 7: born, 8: sex,
                           18: account, 35: species, 36: breed, 37: strain})  # fmt: skip


def nk1(name="Hartley^Jane", phone="01632960123", address="12 Mill Lane^^Ashford^^TN24 8AA^GBR"):
    return segment("NK1", {1: "1", 2: name, 3: "OWN^Owner^HL70063", 4: address, 5: phone})


def obx_weight(value="31.4", unit="kg"):
    return segment("OBX", {1: "1", 2: "NM", 3: "29463-7^Body weight^LN", 5: value, 6: unit, 11: "F"})


def adt(event="A04", control_id="MSG0001", version="2.5.1", visit="V-555", **pid_fields):
    lines = [msh(f"ADT^{event}", control_id, version), segment("EVN", {1: event, 2: "20261123101500"}),
             pid(**pid_fields), nk1(), segment("PV1", {1: "1", 2: "O", 19: visit}), obx_weight()]  # fmt: skip
    return "\r".join(lines) + "\r"


def a40(control_id, survivor="PMS-1001", duplicate="PMS-1002", version="2.5.1"):
    lines = [msh("ADT^A40^ADT_A39", control_id, version), segment("EVN", {1: "A40"}),
             pid(pms_id=survivor), segment("MRG", {1: f"{duplicate}^^^VETPMS^PI"})]  # fmt: skip
    return "\r".join(lines) + "\r"


def order(control_id, control="NW", placer="ORD-1", procedure="DX-THX2^Thorax 2 views^VETPACS", when="20261123143000",
          message_type="ORM^O01", version="2.3.1", **pid_fields):  # fmt: skip
    lines = [msh(message_type, control_id, version), pid(**pid_fields), nk1(), segment("PV1", {1: "1", 2: "O"}),
             segment("ORC", {1: control, 2: f"{placer}^VETPMS", 7: f"^^^{when}", 12: "V12^Okafor^Ada"}),
             segment("OBR", {1: "1", 2: f"{placer}^VETPMS", 4: procedure, 13: "Coughing two weeks",
                             16: "V12^Okafor^Ada", 31: "^Cough"})]  # fmt: skip
    if message_type.startswith("OMI"):
        lines.insert(4, segment("TQ1", {1: "1", 7: when}))
    return "\r".join(lines) + "\r"


# --- As an open-source veterinary PMS sends them ---------------------------------------------
# Modelled on what OpenVPMS (HAPI-based) writes: the animal's id in PID-2 with PID-3 empty (its
# "populate PID-2" option), no NK1 or GT1 (the owner is PID-5's family name, PID-11 address,
# PID-13/14 home and work phones, PID-18 the customer's account number), species and breed as
# its own lookup codes (``CANINE^Canine^OpenVPMS``), its own service codes in OBR-4, the
# requested time in OBR-6 and the transaction time in ORC-9, and HL7 v2.3.


def pms_msh(message_type, control_id, version="2.3", sent="20261123101500", sender="OpenVPMS"):
    return segment("MSH", {2: "^~\\&", 3: sender, 4: "Main Clinic", 5: "VETPACS", 6: "VETPACS", 7: sent,
                           9: message_type, 10: control_id, 11: "P", 12: version,
                           18: "UNICODE UTF-8"})  # fmt: skip


def pms_pid(animal_id="1001", name="Bar^Fido", born="20140701000000+1000", sex="M",
            species="CANINE^Canine^OpenVPMS", breed="LABRADOR^Labrador Retriever^OpenVPMS", account="3001",
            address="123 Broadwater Avenue^^Cape Woolamai^VIC^3058", home="(03) 12345678",
            work="(03) 98765432"):  # fmt: skip
    return segment("PID", {1: "1", 2: animal_id, 5: name, 7: born, 8: sex, 11: address, 13: home, 14: work,
                           18: account, 35: species, 36: breed})  # fmt: skip


def pms_adt(event="A04", control_id="1", version="2.3", sent="20261123101500", **pid_fields):
    lines = [pms_msh(f"ADT^{event}", control_id, version, sent), segment("EVN", {1: event, 2: sent}),
             pms_pid(**pid_fields),
             segment("PV1", {1: "1", 2: "O", 3: "Main Clinic", 7: "2001^Vet^Jo"})]  # fmt: skip
    return "\r".join(lines) + "\r"


def pms_order(control_id="2", control="NW", placer="5001", service="RADTHX^Thorax radiographs^OpenVPMS",
              requested="20261123143000", placed="20261123101500", version="2.3", **pid_fields):  # fmt: skip
    lines = [pms_msh("ORM^O01", control_id, version, placed), pms_pid(**pid_fields),
             segment("PV1", {1: "1", 2: "O", 3: "Main Clinic"}),
             segment("ORC", {1: control, 2: placer, 9: placed, 12: "2001^Vet^Jo"}),
             segment("OBR", {1: "1", 2: placer, 4: service, 6: requested, 13: "Coughing two weeks",
                             16: "2001^Vet^Jo"})]  # fmt: skip
    return "\r".join(lines) + "\r"

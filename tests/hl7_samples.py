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

"""The archive benchmark's corpus: a clinic's two years of studies as DICOM files, and the animals
they belong to (benchmarks/archive.py loads both into VetPACS, the files into Orthanc).

The plan is made from a seed, so every run (and the database fill) sees the same studies without
reading the files: ``plan_make`` gives the animals, the studies with their series and instances,
and the one large CT series the retrieve figures are measured on. ``corpus_build`` writes the
files once under a folder with a manifest, and reuses them while the manifest says the same shape.

- animals: a third as many as studies, owners' family names from benchmarks/worklist.py (many
  distinct ones, so a name search finds a handful), animals' and given names from the harness;
  species as a clinic sees them (dogs, cats, rabbits, ferrets); one study in ten is of an
  animal VetPACS does not know (a referral: Patient ID ``REF…``), the rest of registered ones,
  with Patient's Name ``Owner^Animal`` and the species as the worklist gives them, so that
  ingest links them by Patient ID;
- studies: DX, CR, US, CT and MR as a clinic makes them, over the two years before
  ``END``, each with its series and instances; small synthetic images (64x64, 16-bit
  monochrome, or RGB for ultrasound) and one CT study of ``big`` 512x512 16-bit slices;
- files: Explicit VR Little Endian, in four folders of about equal size (one association each).
"""

import json
import multiprocessing
import random
import shutil
from datetime import date, timedelta
from pathlib import Path

from benchmarks.worklist import GIVEN, PETS, SPECIES, families_make

CORPUS_VERSION = 1
END = date(2026, 11, 30)  # the last study day
DAYS = 730
PARTS = 4  # folders, one storescu association each
UID_ROOT = "1.2.826.0.1.3680043.8.498.77"  # pydicom's root, then ours: <seed>.<study>.<series>.<instance>
SOP_CLASS = {
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray Image Storage - For Presentation
    "CR": "1.2.840.10008.5.1.4.1.1.1",  # Computed Radiography Image Storage
    "US": "1.2.840.10008.5.1.4.1.1.6.1",  # Ultrasound Image Storage
    "CT": "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    "MR": "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
}
# modality: (share of studies, series per study, instances per series, body parts, descriptions)
SHAPES = {
    "DX": (
        50,
        (1, 3),
        (1, 2),
        ["THORAX", "ABDOMEN", "PELVIS", "LIMB"],
        ["Thorax 2 views", "Abdomen", "Hips VD"],
    ),
    "CR": (10, (1, 2), (1, 2), ["THORAX", "SKULL", "LIMB"], ["Thorax", "Dental", "Stifle"]),
    "US": (22, (1, 1), (6, 14), ["ABDOMEN", "HEART"], ["Abdominal ultrasound", "Echocardiography"]),
    "CT": (12, (2, 3), (10, 30), ["HEAD", "THORAX", "ABDOMEN"], ["CT head", "CT thorax staging"]),
    "MR": (6, (3, 4), (8, 16), ["BRAIN", "SPINE"], ["MRI brain", "MRI spine"]),
}
REFERRING = ["Okafor^Ada", "Hartley^Jo", "Nguyen^Linh", "Rossi^Marco", "Jensen^Lars", ""]
SPECIES_CSV = Path(__file__).resolve().parent.parent / "patients" / "vocabulary" / "species.csv"


def species_meanings():
    """{key: the species' meaning} from the vocabulary VetPACS ships (what its worklist sends)."""
    import csv

    with open(SPECIES_CSV, newline="", encoding="utf-8") as handle:
        return {row["key"]: row["meaning"] for row in csv.DictReader(handle) if row["key"] in SPECIES}


# --- the plan ------------------------------------------------------------------------------------


def plan_make(studies_n, instances_n, big, seed=7):
    """Animals, studies (each with its series: uid, number, instance count), the big series;
    ``studies_n`` studies holding ``instances_n`` instances in all, the big series included."""
    rng = random.Random(seed)
    meanings = species_meanings()
    animals_n = max(5, studies_n // 3)
    families = families_make(max(5, animals_n // 4), rng)  # ~4 animals a family name
    keys, shares = list(SPECIES), [v[0] for v in SPECIES.values()]
    animals = []
    for pk in range(1, animals_n + 1):
        key = rng.choices(keys, shares)[0]
        animals.append(
            {
                "pk": pk,
                "patient_id": f"P{pk:06d}",  # settings.PATIENT_ID_PREFIX "P", as the fill writes it
                "family": rng.choice(families),
                "given": rng.choice(GIVEN),
                "name": rng.choice(PETS),
                "species": key,
                "species_meaning": meanings[key],
                "sex": rng.choice("MFMFO"),
                "birth": (END - timedelta(days=rng.randint(200, 5000))).strftime("%Y%m%d"),
                "registered": True,
            }
        )
    modalities, weights = list(SHAPES), [v[0] for v in SHAPES.values()]
    studies = []
    for k in range(max(0, studies_n - 1)):
        if rng.random() < 0.1:  # a referral's images, of an animal the clinic has not registered
            animal = {**rng.choice(animals), "patient_id": f"REF{k:07d}", "registered": False}
            animal["name"] = rng.choice(PETS)
        else:
            animal = rng.choice(animals)
        modality = rng.choices(modalities, weights)[0]
        _, series_range, instance_range, parts, descriptions = SHAPES[modality]
        series = [rng.randint(*instance_range) for _ in range(rng.randint(*series_range))]
        studies.append(_study(k, seed, animal, modality, series, rng, parts, descriptions))
    _fit(studies, instances_n - big, rng)
    animal = animals[0]
    big_study = _study(len(studies), seed, animal, "CT", [big], rng, ["ABDOMEN"], ["CT abdomen, 1 mm"])
    big_study["big"] = True  # 512x512 slices (the others are 64x64)
    studies.append(big_study)
    return {"animals": animals, "studies": studies, "big": big_study}


def _study(k, seed, animal, modality, counts, rng, parts, descriptions):
    day = END - timedelta(days=rng.randrange(DAYS))
    uid = f"{UID_ROOT}.{seed}.{k + 1}"
    return {
        "uid": uid,
        "animal": animal,
        "modality": modality,
        "date": day.strftime("%Y%m%d"),
        "time": f"{rng.randint(8, 18):02d}{rng.randrange(60):02d}{rng.randrange(60):02d}",
        "accession": f"A{seed}{k + 1:07d}"[:16],
        "description": rng.choice(descriptions),
        "body_part": rng.choice(parts),
        "referring": rng.choice(REFERRING),
        "series": [{"uid": f"{uid}.{n + 1}", "number": n + 1, "count": c} for n, c in enumerate(counts)],
    }


def _fit(studies, want, rng):
    """Add or take instances (never below one a series) until the studies hold ``want``."""
    series = [s for study in studies for s in study["series"]]
    if not series:
        return
    have = sum(s["count"] for s in series)
    growable = [s for study in studies if study["modality"] in ("US", "CT", "MR") for s in study["series"]]
    while have < want:
        rng.choice(growable or series)["count"] += 1
        have += 1
    while have > want:
        pick = rng.choice(series)
        if pick["count"] > 1:
            pick["count"] -= 1
            have -= 1
        elif all(s["count"] == 1 for s in series):
            break


def instance_uid(series, number):
    return f"{series['uid']}.{number}"


# --- the files -----------------------------------------------------------------------------------


def corpus_build(root, plan, shape):
    """The plan's files under ``root`` (reused when its manifest says ``shape``); returns whether
    it wrote them, and the folders (one per association) and the big series' files."""
    manifest = root / "manifest.json"
    want = {"version": CORPUS_VERSION, **shape}
    parts = [root / f"part{n}" for n in range(PARTS)]
    if manifest.exists() and json.loads(manifest.read_text()) == want:
        return False, parts
    if manifest.exists():
        shutil.rmtree(root)  # ours (it has our manifest), another shape
    elif root.exists() and any(root.iterdir()):
        raise SystemExit(f"{root} exists, is not empty and has no benchmark manifest: not touching it")
    root.mkdir(parents=True, exist_ok=True)
    # Studies dealt to the folders by instance count, so the four associations carry alike.
    loads, jobs = [0] * PARTS, [[] for _ in range(PARTS)]
    for study in sorted(plan["studies"], key=lambda s: -sum(x["count"] for x in s["series"])):
        n = loads.index(min(loads))
        loads[n] += sum(x["count"] for x in study["series"])
        jobs[n].append(study)
    work = [(parts[n], jobs[n][i::2]) for n in range(PARTS) for i in range(2)]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        pool.starmap(_write_studies, work)
    manifest.write_text(json.dumps(want))
    return True, parts


def _write_studies(folder, studies):
    templates = {}
    for study in studies:
        for series in study["series"]:
            big = bool(study.get("big"))
            kind = "BIG" if big else study["modality"]
            if kind not in templates:
                templates[kind] = _template(kind)
            ds = templates[kind]
            _fill_study(ds, study, series)
            target = folder / study["uid"].rsplit(".", 1)[1] / str(series["number"])
            target.mkdir(parents=True, exist_ok=True)
            for number in range(1, series["count"] + 1):
                uid = instance_uid(series, number)
                ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
                ds.InstanceNumber = number
                if kind in ("CT", "MR", "BIG"):
                    ds.ImagePositionPatient = [0, 0, number * float(ds.SliceThickness)]
                    ds.SliceLocation = number * float(ds.SliceThickness)
                if big:
                    ds.PixelData = _phantom(number, series["count"])
                ds.save_as(target / f"{number}.dcm", enforce_file_format=True)


def _fill_study(ds, study, series):
    animal = study["animal"]
    name = f"{animal['family']}^{animal['name']}"
    ds.SpecificCharacterSet = "ISO_IR 100" if name.isascii() else "ISO_IR 192"
    ds.PatientName, ds.PatientID = name, animal["patient_id"]
    ds.PatientBirthDate, ds.PatientSex = animal["birth"], animal["sex"]
    ds.PatientSpeciesDescription = animal["species_meaning"]
    ds.ResponsiblePerson = f"{animal['family']}^{animal['given']}"
    ds.ResponsiblePersonRole = "OWNER"
    ds.StudyInstanceUID, ds.StudyDate, ds.StudyTime = study["uid"], study["date"], study["time"]
    ds.AccessionNumber, ds.StudyID = study["accession"], study["accession"][-8:]
    ds.StudyDescription, ds.ReferringPhysicianName = study["description"], study["referring"]
    ds.BodyPartExamined = study["body_part"]
    ds.SeriesInstanceUID, ds.SeriesNumber = series["uid"], series["number"]
    ds.SeriesDescription = f"{study['description']} {series['number']}"[:64]
    ds.SeriesDate = ds.ContentDate = study["date"]
    ds.SeriesTime = ds.ContentTime = study["time"]


def _template(kind):
    """A data set of the modality's SOP class with its image: 64x64 (512x512 for the big CT)."""
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

    modality = "CT" if kind == "BIG" else kind
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SOP_CLASS[modality]
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.Modality = SOP_CLASS[modality], modality
    ds.Manufacturer, ds.StationName, ds.InstitutionName = "VetPACS bench", f"{modality}1", "Bench Vets"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL" if modality in ("CT", "MR") else ""]
    size = 512 if kind == "BIG" else 64
    ds.Rows = ds.Columns = size
    if modality == "US":
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        image = np.zeros((size, size, 3), np.uint8)
        image[16:48, 16:48] = (90, 90, 90)
        ds.PixelData = image.tobytes()
    else:
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        y, x = np.mgrid[0:size, 0:size]
        image = (np.hypot(x - size / 2, y - size / 2) < size / 3) * 1200 + 200
        ds.PixelData = image.astype(np.uint16).tobytes()
        ds["PixelData"].VR = "OW"
        ds.WindowCenter, ds.WindowWidth = (1064, 400) if modality == "CT" else (2048, 4096)
    if modality == "DX":
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.ImagerPixelSpacing = [0.15, 0.15]
    if modality in ("CT", "MR"):
        ds.SliceThickness = 1.0 if kind == "BIG" else 3.0
        ds.PixelSpacing = [0.5, 0.5] if kind == "BIG" else [2.0, 2.0]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.FrameOfReferenceUID = f"{UID_ROOT}.0.{ {'CT': 1, 'MR': 2, 'BIG': 3}[kind] }"
    if modality == "CT":
        ds.RescaleIntercept, ds.RescaleSlope, ds.KVP = -1024, 1, 120
    if modality == "MR":
        ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions, ds.MRAcquisitionType = "SE", "NONE", "", "2D"
    return ds


def _phantom(number, count):
    """A 512x512 slice: a body, organs that move from slice to slice, noise (so that no two are
    alike, as in a real series)."""
    import numpy as np

    rng = np.random.default_rng(number)
    y, x = np.mgrid[0:512, 0:512]
    body = np.hypot((x - 256) / 1.2, y - 256) < 200
    organ = np.hypot(x - 200 - 60 * number / count, y - 240) < 40 + 30 * np.sin(number / 20)
    image = 24 + body * 1040 + organ * 60 + rng.integers(0, 40, (512, 512))
    return np.clip(image, 0, 4095).astype(np.uint16).tobytes()

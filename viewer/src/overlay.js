// What the cine feature adds to display.js's corner overlays: the animal's age and weight, the
// laterality, the cine's frame rate, and the orientation markers on the edges (orientation.js).
// Attributes come from the series metadata as DICOM JSON (PS3.18 F.2).
import { edgeLetters, orientationType } from "./orientation.js";

const TAG = {
  patientAge: "00101010", // AS, PS3.5 6.2: nnnD, nnnW, nnnM or nnnY
  birthDate: "00100030",
  weight: "00101030", // DS, in kilograms (PS3.3 C.7.2.2)
  studyDate: "00080020",
  laterality: "00200060", // of the series' body part (C.7.3.1)
  imageLaterality: "00200062", // of the image (C.7.6.2)
  imageOrientation: "00200037",
  patientOrientation: "00200020",
  anatomicalOrientationType: "00102210",
};

function values(meta, tag) {
  const element = meta && meta[tag];
  return element && Array.isArray(element.Value) ? element.Value : [];
}

function first(meta, tag) {
  const value = values(meta, tag)[0];
  return value === undefined || value === null ? "" : String(value);
}

const AGE_UNITS = { D: "d", W: "wk", M: "mo", Y: "y" };

// Patient's Age as written; a zero age or weight is what many modalities send when nobody typed
// one, so it is shown as unknown rather than as a newborn of 0 kg.
export function ageFromString(value) {
  const match = /^(\d{3})([DWMY])$/.exec(value || "");
  if (!match || Number(match[1]) === 0) return "";
  return `${Number(match[1])} ${AGE_UNITS[match[2]]}`;
}

function dateOf(value) {
  const match = /^(\d{4})(\d{2})(\d{2})$/.exec(value || "");
  return match ? { y: Number(match[1]), m: Number(match[2]), d: Number(match[3]) } : null;
}

// The age on the study's day from the birth date: whole years, or months under two years (as
// veterinary records give a young animal's age), or days under a month.
export function ageFromDates(birth, study) {
  const b = dateOf(birth);
  const s = dateOf(study);
  if (!b || !s) return "";
  let months = (s.y - b.y) * 12 + (s.m - b.m) - (s.d < b.d ? 1 : 0);
  if (months < 0) return "";
  if (months >= 24) return `${Math.floor(months / 12)} y`;
  if (months >= 1) return `${months} mo`;
  const days = Math.round((Date.UTC(s.y, s.m - 1, s.d) - Date.UTC(b.y, b.m - 1, b.d)) / 86400000);
  return `${days} d`;
}

export function weightText(value) {
  const kg = Number.parseFloat(value);
  if (!Number.isFinite(kg) || kg <= 0) return "";
  return `${Number(kg.toFixed(kg < 10 ? 2 : 1))} kg`;
}

// Lines for the top left corner, after the animal's name, species and sex.
export function patientLines(meta) {
  const age = ageFromString(first(meta, TAG.patientAge)) || ageFromDates(first(meta, TAG.birthDate), first(meta, TAG.studyDate));
  const weight = weightText(first(meta, TAG.weight));
  const line = [age && `Age ${age}`, weight].filter(Boolean).join(", ");
  return line ? [line] : [];
}

const SIDES = { L: "left", R: "right", B: "both", U: "unpaired" };

// Image Laterality when the image has it, else the series' Laterality.
export function lateralityLines(meta) {
  const value = first(meta, TAG.imageLaterality) || first(meta, TAG.laterality);
  return SIDES[value] ? [`Laterality ${value} (${SIDES[value]})`] : [];
}

// The cine's rate while it plays, as cine.js records it on the viewport's element.
export function cineLines(element) {
  if (element.dataset.cinePlaying !== "true") return [];
  const achieved = element.dataset.cineAchievedFps;
  return [`Cine ${element.dataset.cineFps} fps${achieved ? ` (shown ${achieved})` : ""}`];
}

export function markersMake(cell) {
  const markers = {};
  for (const edge of ["top", "right", "bottom", "left"]) {
    const div = document.createElement("div");
    div.className = `viewer-marker ${edge}`;
    div.dataset.edge = edge;
    cell.appendChild(div);
    markers[edge] = div;
  }
  return markers;
}

export function markersShow(markers, meta, viewport) {
  if (!markers) return;
  const cosines = values(meta, TAG.imageOrientation);
  const letters = meta
    ? edgeLetters(viewport, {
        hasCosines: cosines.length === 6,
        patientOrientation: values(meta, TAG.patientOrientation),
        type: orientationType(first(meta, TAG.anatomicalOrientationType)),
      })
    : null;
  for (const [edge, div] of Object.entries(markers)) div.textContent = (letters && letters[edge]) || "";
}

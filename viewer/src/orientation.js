// Orientation markers on the four edges of a viewport: which way the patient lies beyond each
// edge, after any rotation or flip (the screen's directions are read back from the camera, so
// the letters follow whatever the display did).
//
// Cross-sectional images carry Image Orientation (Patient) (0020,0037), the direction cosines
// of the rows and columns in the patient-based coordinate system of PS3.3 C.7.6.2.1.1: x grows
// to the patient's left, y to posterior, z to the head, for quadrupeds as for people. Cornerstone
// builds its world space from it, so a screen direction in world space is a patient direction.
// Projection images (radiographs) carry Patient Orientation (0020,0020) instead: the direction
// of the rows and of the columns as letters (C.7.6.1.1.1); Cornerstone's world is then the
// image's own plane (rows along x, columns along y).
//
// Letters: L/R/A/P/H/F (C.7.6.1.1.1). When Anatomical Orientation Type (0010,2210) is QUADRUPED,
// C.7.6.1.1.1 uses the veterinary abbreviations of Smallwood et al. (1985): LE/RT, D/V, CR/CD,
// and on the head and limbs R (rostral), M/L (medial/lateral), PR/DI, PA/PL (palmar/plantar);
// the patient-based axes are read as left, dorsal and cranial (C.7.6.2.1.1).
const BIPED_AXES = [
  ["L", "R"],
  ["P", "A"],
  ["H", "F"],
];
const QUADRUPED_AXES = [
  ["LE", "RT"],
  ["D", "V"],
  ["CR", "CD"],
];
// The opposite of each direction letter, to label the edge a Patient Orientation value does not name.
const OPPOSITE = {
  BIPED: { L: "R", R: "L", A: "P", P: "A", H: "F", F: "H" },
  // Rostral faces caudal on the head; palmar and plantar face dorsal on the distal limbs.
  QUADRUPED: { LE: "RT", RT: "LE", D: "V", V: "D", CR: "CD", CD: "CR", R: "CD", M: "L", L: "M", PR: "DI", DI: "PR", PA: "D", PL: "D" },
};
const TOKENS = {
  BIPED: ["L", "R", "A", "P", "H", "F"],
  // Longest first, so that "LE" is not read as L (lateral) and E.
  QUADRUPED: ["LE", "RT", "CR", "CD", "PR", "DI", "PA", "PL", "D", "V", "R", "M", "L"],
};
// A component smaller than this (cosine of about 75°) does not name a direction: an oblique
// plane gets two or three letters, a nearly straight one only its main one.
const MINOR = 0.26;

export function orientationType(value) {
  return String(value || "").toUpperCase() === "QUADRUPED" ? "QUADRUPED" : "BIPED";
}

// The letters of a patient-space direction, the largest component first.
export function directionLetters(vector, type = "BIPED") {
  const axes = type === "QUADRUPED" ? QUADRUPED_AXES : BIPED_AXES;
  return [0, 1, 2]
    .filter((axis) => Math.abs(vector[axis]) >= MINOR)
    .sort((a, b) => Math.abs(vector[b]) - Math.abs(vector[a]))
    .map((axis) => axes[axis][vector[axis] > 0 ? 0 : 1])
    .join("");
}

function tokens(value, type) {
  const found = [];
  let rest = String(value || "").toUpperCase();
  while (rest) {
    const token = TOKENS[type].find((t) => rest.startsWith(t));
    if (!token) return []; // not a value of C.7.6.1.1.1: no marker rather than a wrong one
    found.push(token);
    rest = rest.slice(token.length);
  }
  return found;
}

export function oppositeLetters(value, type = "BIPED") {
  return tokens(value, type)
    .map((token) => OPPOSITE[type][token] || "")
    .join("");
}

// The letters for a direction in Cornerstone's world space: through the direction cosines when
// the image has them, else through Patient Orientation's row and column letters.
export function worldLetters(vector, { hasCosines, patientOrientation, type }) {
  if (hasCosines) return directionLetters(vector, type);
  if (!patientOrientation || patientOrientation.length < 2) return "";
  // World x runs along the rows, world y down the columns.
  const axis = Math.abs(vector[0]) >= Math.abs(vector[1]) ? 0 : 1;
  const label = patientOrientation[axis];
  return vector[axis] > 0 ? tokens(label, type).join("") : oppositeLetters(label, type);
}

function unit(a, b) {
  const d = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
  const length = Math.hypot(...d) || 1;
  return d.map((c) => c / length);
}

// The four edges' letters for a viewport as it is shown now (rotation and flips included).
export function edgeLetters(viewport, orientation) {
  const { clientWidth: width, clientHeight: height } = viewport.canvas;
  if (!width || !height) return null;
  const middle = [width / 2, height / 2];
  const centre = viewport.canvasToWorld(middle);
  const right = unit(centre, viewport.canvasToWorld([middle[0] + 10, middle[1]]));
  const down = unit(centre, viewport.canvasToWorld([middle[0], middle[1] + 10]));
  const letters = (v) => worldLetters(v, orientation);
  return {
    right: letters(right),
    left: letters(right.map((c) => -c)),
    bottom: letters(down),
    top: letters(down.map((c) => -c)),
  };
}

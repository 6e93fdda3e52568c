// Measuring and annotating (issue 16): length, angle, Cobb angle, elliptical and rectangular ROIs,
// arrows with text, text labels and a user's calibration, each a Cornerstone3D annotation on the
// left button. Every annotation keeps its result in data.vetpacs (features.js's contract), so the
// saved marks, the report and the SR export read them without knowing the tools.
//
// Millimetres are computed here, from the annotation's points in image pixels and the spacing in
// the series metadata, not from Cornerstone's own numbers: the loader takes a missing Pixel
// Spacing for 1 mm a pixel, ignores Imager Pixel Spacing, and a calibration through
// calibrateImageSpacing changed the world coordinates under the marks already drawn.
import { eventTarget, utilities as coreUtilities } from "@cornerstonejs/core";
import {
  addTool,
  annotation as annotationApi,
  AngleTool,
  ArrowAnnotateTool,
  CobbAngleTool,
  EllipticalROITool,
  LabelTool,
  LengthTool,
  RectangleROITool,
  Enums as ToolEnums,
} from "@cornerstonejs/tools";
import { wadors } from "@cornerstonejs/dicom-image-loader";

// The line drawn over an object of known size (a 25 mm calibration ball for TPLO planning).
class CalibrationLineTool extends LengthTool {
  static toolName = "CalibrationLine";
}

const CALIBRATION_BALL_MM = 25;

// Tool name -> what it measures, its key and its label (features.js's `kind` codes).
const TOOLS = [
  { tool: LengthTool, kind: "length", label: "Length", key: "L" },
  { tool: AngleTool, kind: "angle", label: "Angle", key: "A" },
  { tool: CobbAngleTool, kind: "cobb", label: "Cobb angle", key: "C" },
  { tool: EllipticalROITool, kind: "ellipse", label: "Ellipse ROI", key: "E" },
  { tool: RectangleROITool, kind: "rectangle", label: "Rectangle ROI", key: "Q" },
  { tool: ArrowAnnotateTool, kind: "arrow", label: "Arrow", key: "X" },
  { tool: LabelTool, kind: "text", label: "Text", key: "Y" },
  { tool: CalibrationLineTool, kind: "calibration", label: "Calibration", key: "M" },
];
const KIND_OF = new Map(TOOLS.map((t) => [t.tool.toolName, t]));

// PS3.3 C.7.6.2 / C.8.11.4 (DX): Pixel Spacing is at the patient; Imager Pixel Spacing at the
// detector's front, so a radiograph's geometric magnification (5-15 %) is in it. Multi-frame
// objects put Pixel Spacing in the Pixel Measures functional group (C.7.6.16.2.1).
const TAG = {
  pixelSpacing: "00280030",
  imagerPixelSpacing: "00181164",
  calibrationType: "00280A02",
  sharedGroups: "52009229",
  pixelMeasures: "00289110",
  modality: "00080060",
};

const CAVEAT = {
  detector: "at the detector: magnification not corrected",
  none: "uncalibrated",
  user: "calibrated by user",
};

function spacingValues(meta, tag) {
  const element = meta && meta[tag];
  const values = element && element.Value;
  if (!values || values.length < 2) return null;
  const numbers = values.slice(0, 2).map(Number);
  return numbers.every((n) => Number.isFinite(n) && n > 0) ? numbers : null;
}

function pixelMeasures(meta) {
  const groups = meta && meta[TAG.sharedGroups] && meta[TAG.sharedGroups].Value;
  const measures = groups && groups[0] && groups[0][TAG.pixelMeasures] && groups[0][TAG.pixelMeasures].Value;
  return measures ? spacingValues(measures[0], TAG.pixelSpacing) : null;
}

// The image's own spacing, [row, column] in mm (PS3.3 10.7.1.3: adjacent rows, then columns), and
// where it is measured. A Pixel Spacing equal to the Imager Pixel Spacing with no calibration type
// is the detector's copied over (PS3.3 10.7.1.3), so it keeps the detector's caveat.
export function spacingOf(imageId) {
  const meta = wadors.metaDataManager.get(imageId);
  const pixel = spacingValues(meta, TAG.pixelSpacing) || pixelMeasures(meta);
  const imager = spacingValues(meta, TAG.imagerPixelSpacing);
  const copied = pixel && imager && !meta[TAG.calibrationType] && pixel[0] === imager[0] && pixel[1] === imager[1];
  if (pixel && !copied) return { row: pixel[0], col: pixel[1], source: "patient" };
  if (imager) return { row: imager[0], col: imager[1], source: "detector" };
  return { row: 1, col: 1, source: "none" };
}

function seriesOf(imageId) {
  const match = /\/series\/([^/]+)\//.exec(imageId || "");
  return match ? match[1] : "";
}

function modalityOf(imageId) {
  const meta = wadors.metaDataManager.get(imageId);
  const element = meta && meta[TAG.modality];
  return element && element.Value ? String(element.Value[0]) : "";
}

// Per series: the calibration annotation in force and its factor (mm per base unit).
const calibrations = new Map();

// The mm (or px) of one image pixel along a row and down a column, and what it rests on.
function scaleOf(imageId) {
  const base = spacingOf(imageId);
  const calibration = calibrations.get(seriesOf(imageId));
  if (calibration) {
    return {
      col: base.col * calibration.factor,
      row: base.row * calibration.factor,
      unit: "mm",
      caveat: CAVEAT.user,
      reference: `Calibrated by user: a line over a ${round(calibration.size, 1)} mm object`,
    };
  }
  if (base.source === "patient") return { ...base, unit: "mm", caveat: "", reference: "Pixel Spacing (0028,0030): at the patient" };
  if (base.source === "detector") {
    return { ...base, unit: "mm", caveat: CAVEAT.detector, reference: "Imager Pixel Spacing (0018,1164): at the detector, magnification not corrected" };
  }
  return { ...base, unit: "px", caveat: CAVEAT.none, reference: "No pixel spacing in the image: uncalibrated, in pixels" };
}

function round(value, places) {
  return Number(value.toFixed(places));
}

// The annotation's points in image pixels ([column, row]), then scaled to mm (or px).
function scaledPoints(annotation, scale) {
  const imageId = annotation.metadata.referencedImageId;
  return annotation.data.handles.points.map((point) => {
    const [x, y] = coreUtilities.worldToImageCoords(imageId, point);
    return [x * scale.col, y * scale.row];
  });
}

function distance(a, b) {
  return Math.hypot(a[0] - b[0], a[1] - b[1]);
}

function angleBetween(u, v) {
  const cosine = (u[0] * v[0] + u[1] * v[1]) / (Math.hypot(...u) * Math.hypot(...v));
  return (Math.acos(Math.max(-1, Math.min(1, cosine))) * 180) / Math.PI;
}

function shoelace(points) {
  let sum = 0;
  points.forEach((p, i) => {
    const q = points[(i + 1) % points.length];
    sum += p[0] * q[1] - q[0] * p[1];
  });
  return Math.abs(sum) / 2;
}

// Cornerstone's statistics of the ROI's pixels (the loader's rescaled values: HU on CT, PS3.3
// C.11.1.1.2), for the image the annotation is on.
function roiStats(annotation) {
  const stats = annotation.data.cachedStats || {};
  const imageId = annotation.metadata.referencedImageId;
  const key = Object.keys(stats).find((k) => k.includes(imageId)) || Object.keys(stats)[0];
  const found = key && stats[key];
  return found && Number.isFinite(found.mean) ? found : null;
}

function withCaveat(text, scale) {
  return scale.caveat ? `${text} (${scale.caveat})` : text;
}

// The result of one annotation, as data.vetpacs holds it and as its text box shows it.
function resultOf(annotation) {
  const entry = KIND_OF.get(annotation.metadata.toolName);
  const kind = (entry && entry.kind) || (annotation.data.vetpacs && annotation.data.vetpacs.kind);
  const label = entry ? entry.label : kind;
  const imageId = annotation.metadata.referencedImageId;
  const points = annotation.data.handles && annotation.data.handles.points;
  if (kind === "arrow" || kind === "text") {
    const text = annotation.data.label || annotation.data.text || "";
    return { vetpacs: { kind, label, value: null, unit: "", text, reference: "" }, lines: null };
  }
  if (!imageId || !points || points.length < 2) return null;

  if (kind === "calibration") {
    // Measured on the image's own spacing: the calibration is what it defines, not what it uses.
    const base = spacingOf(imageId);
    const own = { col: base.col, row: base.row };
    const size = annotation.data.vetpacs && annotation.data.vetpacs.value;
    const [a, b] = scaledPoints(annotation, own);
    const text = Number.isFinite(size) ? `Calibration: ${round(size, 1)} mm` : "Calibration: size?";
    const measured = `${round(distance(a, b), 1)} ${base.source === "none" ? "px" : "mm"} as drawn`;
    return {
      vetpacs: { kind, label, value: Number.isFinite(size) ? size : null, unit: "mm", text, reference: measured },
      lines: [text, measured],
    };
  }

  const scale = scaleOf(imageId);
  const p = scaledPoints(annotation, scale);
  let value;
  let unit = scale.unit;
  let shown;
  if (kind === "length") {
    value = round(distance(p[0], p[1]), 1);
    shown = `${value.toFixed(1)} ${unit}`;
  } else if (kind === "angle" && p.length >= 3) {
    // The angle at the middle point, between the two arms.
    value = round(angleBetween([p[0][0] - p[1][0], p[0][1] - p[1][1]], [p[2][0] - p[1][0], p[2][1] - p[1][1]]), 1);
    unit = "deg";
  } else if (kind === "cobb" && p.length >= 4) {
    // Cobb (1948): the angle between the two endplate lines, the acute one of their crossing.
    const angle = angleBetween([p[1][0] - p[0][0], p[1][1] - p[0][1]], [p[3][0] - p[2][0], p[3][1] - p[2][1]]);
    value = round(Math.min(angle, 180 - angle), 1);
    unit = "deg";
  } else if (kind === "rectangle" && p.length >= 4) {
    // Cornerstone's corners: top left, top right, bottom left, bottom right.
    value = round(shoelace([p[0], p[1], p[3], p[2]]), 1);
    unit = `${scale.unit}2`;
  } else if (kind === "ellipse" && p.length >= 4) {
    // Cornerstone's handles: bottom, top, left, right; the area of an ellipse is pi a b.
    value = round((Math.PI * distance(p[0], p[1]) * distance(p[2], p[3])) / 4, 1);
    unit = `${scale.unit}2`;
  } else {
    return null;
  }
  if (unit === "deg") {
    const text = `${label} ${value}°`;
    const lines = [`${value}°`];
    // Angles are the same at any scale, unless the pixels are not square.
    return { vetpacs: { kind, label, value, unit, text, reference: scale.reference }, lines };
  }
  const areaUnit = { mm2: "mm²", px2: "px²" }[unit];
  const lines = [];
  let text;
  if (areaUnit) {
    const stats = roiStats(annotation);
    const hu = modalityOf(imageId) === "CT" ? " HU" : "";
    const parts = [`Area ${value.toFixed(1)} ${areaUnit}`];
    if (stats) {
      parts.push(`mean ${round(stats.mean, 1)}${hu}`, `SD ${round(stats.stdDev || 0, 1)}${hu}`);
    }
    lines.push(parts[0], ...(stats ? [`Mean ${round(stats.mean, 1)}${hu}`, `SD ${round(stats.stdDev || 0, 1)}${hu}`] : []));
    text = withCaveat(parts.join(", "), scale);
    if (stats) {
      // The pixel statistics beside the area, for the report (UCUM's Hounsfield unit on CT).
      const statsUnit = hu ? "[hnsf'U]" : "";
      const extra = { mean: round(stats.mean, 1), sd: round(stats.stdDev || 0, 1), statsUnit };
      if (scale.caveat) lines.push(scale.caveat);
      return { vetpacs: { kind, label, value, unit, text, reference: scale.reference, ...extra }, lines };
    }
  } else {
    lines.push(shown);
    text = withCaveat(`${label} ${shown}`, scale);
  }
  if (scale.caveat) lines.push(scale.caveat);
  return { vetpacs: { kind, label, value, unit, text, reference: scale.reference }, lines };
}

// The results for scripts (and the tests): one hidden item an annotation, its result as data
// attributes. The annotations panel shows them to people.
function listUpdate(annotation) {
  const list = document.getElementById("measure-values");
  const vetpacs = annotation.data && annotation.data.vetpacs;
  if (!list || !vetpacs) return;
  let item = list.querySelector(`[data-annotation-uid="${annotation.annotationUID}"]`);
  if (!item) {
    item = document.createElement("li");
    item.dataset.annotationUid = annotation.annotationUID;
    list.appendChild(item);
  }
  if (item.textContent === vetpacs.text && item.dataset.unit === vetpacs.unit) return; // as shown
  item.dataset.kind = vetpacs.kind;
  item.dataset.value = vetpacs.value === null || vetpacs.value === undefined ? "" : String(vetpacs.value);
  item.dataset.unit = vetpacs.unit;
  item.dataset.series = seriesOf(annotation.metadata.referencedImageId);
  item.textContent = vetpacs.text;
}

function listRemove(annotationUID) {
  const list = document.getElementById("measure-values");
  const item = list && list.querySelector(`[data-annotation-uid="${annotationUID}"]`);
  if (item) item.remove();
}

// Recomputes data.vetpacs (kept up to date whenever the result may have changed) and returns
// the text box's lines.
function resultUpdate(annotation) {
  const result = resultOf(annotation);
  if (!result) return [];
  const previous = annotation.data.vetpacs;
  annotation.data.vetpacs = { ...(previous || {}), ...result.vetpacs };
  listUpdate(annotation);
  return result.lines || [];
}

// getTextLines is given the annotation's data alone: its annotation, looked up once.
const annotationOf = new WeakMap();
function annotationOfData(data) {
  if (!annotationOf.has(data)) {
    const found = annotationApi.state.getAllAnnotations().find((a) => a.data === data);
    if (!found) return undefined;
    annotationOf.set(data, found);
  }
  return annotationOf.get(data);
}

// A question asked in the toolbar's small form (not window.prompt, which stops the page).
let pendingAnswer = null;
function ask(question, value, numeric) {
  const form = document.getElementById("measure-ask");
  if (!form) return Promise.resolve(numeric ? String(value) : null);
  if (pendingAnswer) pendingAnswer(null);
  const input = form.querySelector("input");
  form.querySelector("[data-question]").textContent = question;
  input.value = value || "";
  input.inputMode = numeric ? "decimal" : "text";
  form.hidden = false;
  input.focus();
  input.select();
  return new Promise((resolve) => {
    pendingAnswer = (answer) => {
      pendingAnswer = null;
      form.hidden = true;
      resolve(answer);
    };
  });
}

function askFormStart(viewer) {
  const form = document.getElementById("measure-ask");
  if (!form) return;
  const input = form.querySelector("input");
  const done = (answer) => {
    if (pendingAnswer) pendingAnswer(answer);
    const active = viewer.activeViewport();
    if (active && active.element) active.element.focus();
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    done(input.value.trim() || null);
  });
  form.querySelector("[data-ask-cancel]").addEventListener("click", () => done(null));
  input.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      done(null);
    }
  });
}

function renderAll(viewer) {
  for (const shown of viewer.viewports()) if (shown) shown.render();
}

// The series' calibration from its calibration annotations: the last one with a size wins.
function calibrationFind(series) {
  const found = annotationApi.state
    .getAllAnnotations()
    .filter((a) => a.data && a.data.vetpacs && a.data.vetpacs.kind === "calibration" && Number.isFinite(a.data.vetpacs.value))
    .filter((a) => seriesOf(a.metadata.referencedImageId) === series);
  const last = found[found.length - 1];
  if (!last) return null;
  const imageId = last.metadata.referencedImageId;
  const base = spacingOf(imageId);
  const [a, b] = scaledPoints(last, { col: base.col, row: base.row });
  const drawn = distance(a, b);
  if (!(drawn > 0)) return null;
  return { annotationUID: last.annotationUID, size: last.data.vetpacs.value, factor: last.data.vetpacs.value / drawn };
}

// A calibration was drawn, moved, restored or removed: every mark of the series is recomputed.
function calibrationRefresh(viewer, series) {
  const found = calibrationFind(series);
  if (found) calibrations.set(series, found);
  else calibrations.delete(series);
  for (const annotation of annotationApi.state.getAllAnnotations()) {
    if (seriesOf(annotation.metadata.referencedImageId) === series) resultUpdate(annotation);
  }
  const grid = viewer.grid;
  if (grid) grid.dataset.calibration = [...calibrations.entries()].map(([uid, c]) => `${uid}:${c.factor}`).join(" ");
  renderAll(viewer);
}

function isCalibration(annotation) {
  return Boolean(
    annotation &&
      (annotation.metadata.toolName === CalibrationLineTool.toolName ||
        (annotation.data && annotation.data.vetpacs && annotation.data.vetpacs.kind === "calibration")),
  );
}

async function calibrationAsk(viewer, annotation) {
  const answer = await ask("Size of the object under the line (mm)", String(CALIBRATION_BALL_MM), true);
  const size = Number(String(answer || "").replace(",", "."));
  if (!answer || !(size > 0)) {
    annotationApi.state.removeAnnotation(annotation.annotationUID);
    renderAll(viewer);
    return;
  }
  annotation.data.vetpacs = { ...(annotation.data.vetpacs || {}), kind: "calibration", value: size };
  resultUpdate(annotation);
  calibrationRefresh(viewer, seriesOf(annotation.metadata.referencedImageId));
}

function textCallbacks(question) {
  return {
    getTextCallback: (done) => {
      ask(question, "", false).then((text) => done(text));
    },
    changeTextCallback: (data, _eventData, done) => {
      const current = (data && data.data && data.data.label) || (data && data.label) || "";
      ask(question, current, false).then((text) => done(text || current));
    },
  };
}

export function start(viewer) {
  const toolbar = document.getElementById("measure-tools");
  if (!toolbar) return; // a page without the measuring part

  const getTextLines = (data) => {
    const annotation = annotationOfData(data);
    return annotation ? resultUpdate(annotation) : [];
  };
  const configuration = {
    [ArrowAnnotateTool.toolName]: textCallbacks("Arrow's text"),
    [LabelTool.toolName]: textCallbacks("Label's text"),
  };
  for (const { tool } of TOOLS) {
    addTool(tool);
    const own = configuration[tool.toolName] || { getTextLines };
    if (!viewer.toolGroup.hasTool(tool.toolName)) viewer.toolGroup.addTool(tool.toolName, own);
    // Passive: their marks are drawn and can be moved while another tool has the left button
    // (also the ones the annotations feature restores).
    viewer.toolGroup.setToolPassive(tool.toolName);
  }

  for (const { tool, label, key } of TOOLS) {
    viewer.keyAdd(key, key === "M" ? "Calibrate: a line over an object of known size" : label, () => viewer.primaryToolSet(tool.toolName));
  }
  for (const button of toolbar.querySelectorAll("[data-tool]")) {
    button.addEventListener("click", () => viewer.primaryToolSet(button.dataset.tool));
  }
  askFormStart(viewer);
  // The annotations' state for page scripts and the tests (as the annotations feature restores
  // saved marks into it); nothing else of Cornerstone is global.
  window.vetpacsAnnotations = annotationApi.state;

  const { Events } = ToolEnums;
  const changed = (event) => {
    const { annotation } = event.detail;
    if (!annotation || !annotation.metadata) return;
    if (isCalibration(annotation)) {
      resultUpdate(annotation);
      const series = seriesOf(annotation.metadata.referencedImageId);
      const current = calibrations.get(series);
      const size = annotation.data.vetpacs && annotation.data.vetpacs.value;
      // A restored calibration, or a calibration line moved: the series' values change.
      if (Number.isFinite(size) || (current && current.annotationUID === annotation.annotationUID)) {
        calibrationRefresh(viewer, series);
      }
      return;
    }
    if (KIND_OF.has(annotation.metadata.toolName)) resultUpdate(annotation);
  };
  eventTarget.addEventListener(Events.ANNOTATION_ADDED, changed);
  eventTarget.addEventListener(Events.ANNOTATION_MODIFIED, changed);
  eventTarget.addEventListener(Events.ANNOTATION_COMPLETED, (event) => {
    const { annotation } = event.detail;
    if (!annotation || !annotation.metadata) return;
    const fresh = !(annotation.data.vetpacs && Number.isFinite(annotation.data.vetpacs.value));
    if (annotation.metadata.toolName === CalibrationLineTool.toolName && fresh) calibrationAsk(viewer, annotation);
    else changed(event);
  });
  eventTarget.addEventListener(Events.ANNOTATION_REMOVED, (event) => {
    const { annotation } = event.detail;
    if (!annotation || !annotation.metadata) return;
    listRemove(annotation.annotationUID);
    const series = seriesOf(annotation.metadata.referencedImageId);
    const current = calibrations.get(series);
    if (current && current.annotationUID === annotation.annotationUID) calibrationRefresh(viewer, series);
  });
}

// Annotations (issue 16): the study's marks and measurements saved on the server, per study and
// versioned (imaging/annotations/, REST /api/v1/studies/{id}/annotations). On start (last of the
// features, after every tool is added) the saved set goes into Cornerstone's annotation.state,
// so colleagues see what was drawn; Save (Ctrl+S) sends every annotation on this study's images,
// with the key images, naming the version it edited (a newer one saved meanwhile: 409, shown).
// F flags the active viewport's image as a key image (viewer.keyImages, which the report reads).
// Export puts the saved version into the study as a DICOM measurement SR and key object
// selection; the history table shows the animal's VHS and VLAS on its other studies.
import { eventTarget, Enums as CoreEnums } from "@cornerstonejs/core";
import {
  addTool,
  annotation as csAnnotation,
  utilities as toolUtilities,
  AngleTool,
  ArrowAnnotateTool,
  BidirectionalTool,
  CobbAngleTool,
  EllipticalROITool,
  LengthTool,
  ProbeTool,
  RectangleROITool,
  Enums as ToolEnums,
} from "@cornerstonejs/tools";

const { state } = csAnnotation;
// Cornerstone's own tools, so that a saved mark of one still shows when no feature added it.
const BUILT_IN = [AngleTool, ArrowAnnotateTool, BidirectionalTool, CobbAngleTool, EllipticalROITool,
  LengthTool, ProbeTool, RectangleROITool];
const IMAGE_ID = /\/studies\/([0-9.]+)\/series\/([0-9.]+)\/instances\/([0-9.]+)\/frames\/([0-9]+)$/;
const CHANGES = [
  ToolEnums.Events.ANNOTATION_COMPLETED,
  ToolEnums.Events.ANNOTATION_MODIFIED,
  ToolEnums.Events.ANNOTATION_REMOVED,
];

function csrfToken() {
  try {
    return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
  } catch {
    return "";
  }
}

export async function call(url, method = "GET", body = undefined) {
  const answer = await fetch(url, {
    method,
    credentials: "same-origin",
    headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await answer.json().catch(() => ({}));
  return { status: answer.status, ok: answer.ok, data };
}

function hhmm(iso) {
  const moment = new Date(iso);
  return `${String(moment.getHours()).padStart(2, "0")}:${String(moment.getMinutes()).padStart(2, "0")}`;
}

export function imageRef(imageId) {
  const match = IMAGE_ID.exec(imageId || "");
  return match ? { studyUid: match[1], seriesUid: match[2], sopInstanceUid: match[3], frame: Number(match[4]) } : null;
}

// A built-in tool's result when no feature described it (features.js: data.vetpacs): the length
// or angle Cornerstone computed, so that it is listed, reported and exported all the same.
function resultOf(annotation) {
  const data = annotation.data || {};
  // A feature's own result; one this module derived (below) is derived again, as the handles move.
  if (data.vetpacs && !data.vetpacs.derived) return data.vetpacs;
  const stats = Object.values(data.cachedStats || {})[0] || {};
  const tool = annotation.metadata?.toolName;
  if (typeof stats.length === "number" && Number.isFinite(stats.length)) {
    const unit = stats.unit || "mm";
    return { kind: "length", label: "Length", value: Number(stats.length.toFixed(2)), unit,
      text: `Length ${stats.length.toFixed(1)} ${unit}`, reference: "", derived: true };
  }
  if (typeof stats.angle === "number" && Number.isFinite(stats.angle)) {
    return { kind: "angle", label: "Angle", value: Number(stats.angle.toFixed(2)), unit: "deg",
      text: `Angle ${stats.angle.toFixed(1)}°`, reference: "", derived: true };
  }
  if (data.text) return { kind: "text", label: tool, value: null, unit: null, text: String(data.text), reference: "", derived: true };
  return data.vetpacs || null;
}

export async function start(viewer) {
  const panel = document.getElementById("viewer-annotations");
  if (!panel) return;
  const studyUid = viewer.page.studyUid;
  const url = panel.dataset.url;
  const part = (name) => panel.querySelector(`[data-part="${name}"]`);
  const status = part("status");
  const list = part("list");
  const keyButton = part("key");
  let saved = { version: 0, authors: {}, saved_by_name: "", saved_at: null };
  let dirty = false;
  viewer.keyImages = [];

  // This study's annotations only: another study's (a prior beside it) belong to that study's set.
  const ours = () => state.getAllAnnotations().filter((a) => imageRef(a.metadata?.referencedImageId)?.studyUid === studyUid);

  function say(text, stateName = "") {
    status.textContent = text;
    panel.dataset.state = stateName;
  }

  function savedLine() {
    if (!saved.version) return "Nothing saved for this study yet.";
    return `Saved v${saved.version} by ${saved.saved_by_name || "someone"} at ${hhmm(saved.saved_at)}`;
  }

  function listShow() {
    list.replaceChildren();
    for (const annotation of ours()) {
      const result = resultOf(annotation);
      const item = document.createElement("li");
      const what = document.createElement("span");
      what.textContent = result?.text || annotation.metadata?.toolName || "Mark";
      const who = document.createElement("span");
      who.className = "muted";
      who.textContent = ` — ${saved.authors?.[annotation.annotationUID] || "not saved yet"}`;
      item.append(what, who);
      list.appendChild(item);
    }
    if (!list.firstChild) {
      const item = document.createElement("li");
      item.className = "muted";
      item.textContent = "No measurements yet.";
      list.appendChild(item);
    }
    panel.dataset.count = String(ours().length);
  }

  function keyShow() {
    const imageId = viewer.activeViewport()?.getCurrentImageId?.();
    const ref = imageRef(imageId);
    const flagged = !!ref && viewer.keyImages.some((k) => k.sopInstanceUid === ref.sopInstanceUid && k.frame === ref.frame);
    keyButton.setAttribute("aria-pressed", String(flagged));
    part("keys").textContent = viewer.keyImages.length ? `${viewer.keyImages.length} key image(s)` : "";
  }

  function render() {
    toolUtilities.triggerAnnotationRenderForViewportIds(viewer.viewports().filter(Boolean).map((v) => v.id));
  }

  function changed(event) {
    // Statistics computed again (an image shown, a mark loaded) change nothing the user did.
    if (event?.detail?.changeType === ToolEnums.ChangeTypes.StatsUpdated) {
      listShow();
      return;
    }
    dirty = true;
    say(`${savedLine()} · unsaved changes`, "dirty");
    listShow();
  }

  // The saved set into annotation.state, replacing this study's marks there.
  function loadInto(version) {
    saved = version;
    for (const annotation of ours()) state.removeAnnotation(annotation.annotationUID);
    for (const tool of BUILT_IN) addTool(tool);
    for (const stored of version.annotations) {
      const annotation = structuredClone(stored);
      const tool = annotation.metadata?.toolName;
      if (tool && !viewer.toolGroup.hasTool(tool)) {
        try {
          viewer.toolGroup.addTool(tool);
          viewer.toolGroup.setToolPassive(tool);
        } catch (error) {
          console.warn(`A saved mark of tool ${tool} cannot be shown: ${error.message || error}`);
        }
      }
      annotation.isSelected = false;
      annotation.highlighted = false;
      annotation.invalidated = true; // its statistics are computed again on the image
      state.addAnnotation(annotation, annotation.metadata?.FrameOfReferenceUID || viewer.activeViewport().element);
    }
    viewer.keyImages = (version.key_images || []).map((k) => ({ ...k }));
    dirty = false;
    say(savedLine(), "saved");
    listShow();
    keyShow();
    render();
  }

  async function load() {
    const answer = await call(url);
    if (!answer.ok) {
      say(`The saved annotations could not be read (HTTP ${answer.status}).`, "failed");
      return;
    }
    loadInto(answer.data);
  }

  async function save() {
    const annotations = ours().map((annotation) => {
      const copy = JSON.parse(JSON.stringify(annotation));
      const result = resultOf(annotation);
      if (result) copy.data.vetpacs = result;
      delete copy.isSelected;
      return copy;
    });
    say("Saving…", "saving");
    const answer = await call(url, "PUT", { version: saved.version, annotations, key_images: viewer.keyImages });
    if (answer.status === 409) {
      say(`${answer.data.error?.message || "Saved by someone else meanwhile."} Reload them to go on.`, "stale");
      part("reload").hidden = false;
      return false;
    }
    if (!answer.ok) {
      const fields = answer.data.error?.fields ? ` (${Object.keys(answer.data.error.fields).join(", ")})` : "";
      say(`Not saved: ${answer.data.error?.message || `HTTP ${answer.status}`}${fields}`, "failed");
      return false;
    }
    saved = answer.data;
    dirty = false;
    say(savedLine(), "saved");
    listShow();
    historyShow();
    return true;
  }

  function keyToggle() {
    const imageId = viewer.activeViewport()?.getCurrentImageId?.();
    const ref = imageRef(imageId);
    if (!ref || ref.studyUid !== studyUid) return;
    const at = viewer.keyImages.findIndex((k) => k.sopInstanceUid === ref.sopInstanceUid && k.frame === ref.frame);
    viewer.keyImages = at >= 0
      ? viewer.keyImages.filter((_, index) => index !== at)
      : [...viewer.keyImages, { seriesUid: ref.seriesUid, sopInstanceUid: ref.sopInstanceUid, frame: ref.frame, imageId }];
    document.dispatchEvent(new CustomEvent("vetpacs:keyimages", { detail: viewer.keyImages }));
    keyShow();
    changed();
  }

  async function exportStudy() {
    if (dirty && !(await save())) return;
    say("Exporting to the study…", "exporting");
    const answer = await call(`${url}/export`, "POST");
    if (!answer.ok) {
      say(`Not exported: ${answer.data.error?.message || `HTTP ${answer.status}`}`, "failed");
      return;
    }
    const what = answer.data.queued ? "exported" : "was exported before";
    say(`v${answer.data.version} ${what} as DICOM SR ${answer.data.sr_sop_instance_uid || "(key images only)"}`, "exported");
    panel.dataset.srUid = answer.data.sr_sop_instance_uid;
  }

  async function historyShow() {
    const table = part("history");
    const answer = await call(panel.dataset.historyUrl);
    const body = table.tBodies[0];
    body.replaceChildren();
    if (!answer.ok) return;
    const byStudy = new Map();
    for (const value of answer.data) {
      const row = byStudy.get(value.study_id) || { date: value.study_date, here: value.this_study };
      row[value.kind] = value.text || `${value.value}`;
      byStudy.set(value.study_id, row);
    }
    for (const row of byStudy.values()) {
      const tr = body.insertRow();
      if (row.here) tr.className = "current";
      tr.insertCell().textContent = `${row.date || "no date"}${row.here ? " (this study)" : ""}`;
      tr.insertCell().textContent = row.vhs || "—";
      tr.insertCell().textContent = row.vlas || "—";
    }
    table.hidden = !byStudy.size;
    part("no-history").hidden = !!byStudy.size;
  }

  part("save").addEventListener("click", save);
  keyButton.addEventListener("click", keyToggle);
  part("export").addEventListener("click", exportStudy);
  part("reload").addEventListener("click", async () => {
    part("reload").hidden = true;
    await load();
  });
  viewer.keyAdd("F", "Flag the image as a key image (again: unflag)", keyToggle);
  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "s") {
      event.preventDefault(); // not the browser's "save page"
      save();
    }
  });
  for (const name of CHANGES) eventTarget.addEventListener(name, changed);
  // The image changing in any viewport (scrolling, another series, another layout's cells): the
  // key button follows. Cornerstone's element events do not bubble; a capturing listener sees them.
  document.addEventListener(CoreEnums.Events.STACK_NEW_IMAGE, keyShow, true);
  if (viewer.grid) viewer.grid.addEventListener("click", keyShow);

  await load();
  historyShow();
  // The study's measurements as the panel lists them, for the report ("into the report" in one
  // click): each result line with its value, unit and who drew it.
  viewer.measurements = () => ours().map((annotation) => {
    const result = resultOf(annotation) || {};
    return { text: result.text || annotation.metadata?.toolName || "", kind: result.kind || "", value: result.value ?? null,
      unit: result.unit || "", author: saved.authors?.[annotation.annotationUID] || "" };
  });
  // The viewer's API on this panel's element (not a global): a browser test puts a tool on the
  // left button through it, as a toolbar button would.
  panel.viewerApi = viewer;
}

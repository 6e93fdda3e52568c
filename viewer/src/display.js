// The viewer's display (issue 16): the series strip, layouts of 1, 2 or 4 stack viewports (each its
// own series), the tools that act on the active viewport from the keyboard, and the corner
// overlays. main.js opens the first viewport (#viewer, the grid's first cell) and hands it here;
// the page's display block (templates/imaging/study_viewer.html) holds the toolbar, the strip and
// the series list as JSON.
import { Enums as CoreEnums, utilities } from "@cornerstonejs/core";
import { addTool, PanTool, ZoomTool, WindowLevelTool, Enums as ToolEnums } from "@cornerstonejs/tools";
import { wadors } from "@cornerstonejs/dicom-image-loader";
import { presetsFor } from "./presets.js";
// Age, weight, laterality, the cine's rate and the orientation markers (the cine feature's).
import { cineLines, lateralityLines, markersMake, markersShow, patientLines } from "./overlay.js";

const LAYOUTS = { "1x1": 1, "1x2": 2, "2x2": 4 };
const LAYOUT_KEYS = { 1: "1x1", 2: "1x2", 4: "2x2" };


const SHORTCUTS = [
  ["1 / 2 / 4", "Layout: one, two or four viewports"],
  ["Click / drag a series", "Show it in the active viewport / the viewport dropped on"],
  ["Wheel, ↑ ↓", "Previous and next image"],
  ["Left drag", "Window and level (W returns to it)"],
  ["5 / 6 / 7 / 8", "CT: soft tissue 400/40, lung 1500/-600, bone 1800/400, brain 80/40; other images: the windows the modality recorded"],
  ["I", "Invert"],
  ["R", "Rotate 90° clockwise"],
  ["H / V", "Flip horizontally / vertically"],
  ["Z, Ctrl+wheel", "Zoom with the left drag, zoom with the wheel"],
  ["P, middle drag", "Pan with the left drag, pan"],
  ["Esc / 0", "Fit and reset the image"],
  ["?", "This help"],
];

// Attributes of PS3.3 C.7.1.1 (Patient Module, with its veterinary attributes) and the study
// and series modules, as the series metadata gives them (DICOM JSON, PS3.18 F.2).
const TAG = {
  patientName: "00100010",
  species: "00102201",
  breed: "00102292",
  sex: "00100040",
  neutered: "00102203",
  owner: "00102297",
  studyDate: "00080020",
  seriesNumber: "00200011",
  seriesDescription: "0008103E",
};

function attribute(meta, tag) {
  const element = meta && meta[tag];
  const value = element && element.Value ? element.Value[0] : undefined;
  if (value && typeof value === "object") return value.Alphabetic || "";
  return value === undefined || value === null ? "" : String(value);
}

function dicomDate(value) {
  return /^\d{8}$/.test(value) ? `${value.slice(0, 4)}-${value.slice(4, 6)}-${value.slice(6)}` : value;
}

function personName(value) {
  return value.replace(/\^+/g, " ").trim();
}

export function displayStart({ engine, toolGroup, element, viewport, dicomwebRoot, studyUid, seriesUid, seriesImageIds }) {
  const grid = document.getElementById("viewer-grid");
  const strip = document.getElementById("viewer-strip");
  const seriesData = document.getElementById("viewer-series");
  if (!grid || !strip || !seriesData) return; // a page without the display block
  const seriesList = JSON.parse(seriesData.textContent);
  const imageIdsOf = new Map(); // series UID -> its image ids' promise, read once
  imageIdsOf.set(seriesUid, Promise.resolve(viewport.getImageIds()));

  addTool(PanTool);
  addTool(ZoomTool);
  for (const name of [PanTool.toolName, ZoomTool.toolName]) {
    if (!toolGroup.hasTool(name)) toolGroup.addTool(name);
  }
  toolGroup.setToolActive(PanTool.toolName, { bindings: [{ mouseButton: ToolEnums.MouseBindings.Auxiliary }] });
  toolGroup.setToolActive(ZoomTool.toolName, {
    bindings: [{ mouseButton: ToolEnums.MouseBindings.Wheel, modifierKey: ToolEnums.KeyboardBindings.Ctrl }],
  });

  // The cells: the first is main.js's, the others are made when a layout needs them.
  const cells = [{ cell: element.parentElement, element, viewportId: viewport.id, seriesUid }];
  let active = 0;

  // A series of another study (a prior, compare.js) names its study; series UIDs are unique.
  function imageIds(uid, study = studyUid) {
    if (!imageIdsOf.has(uid)) imageIdsOf.set(uid, seriesImageIds(dicomwebRoot, study, uid));
    return imageIdsOf.get(uid);
  }

  function viewportOf(index) {
    return engine.getViewport(cells[index].viewportId);
  }

  // The window presets of the image a viewport shows (presets.js), and the toolbar's list of them
  // for the active viewport, made again only when they change.
  function presetsOf(index) {
    const shown = viewportOf(index);
    const ids = shown ? shown.getImageIds() : [];
    return ids.length ? presetsFor(wadors.metaDataManager.get(ids[shown.getCurrentImageIdIndex()])) : [];
  }

  const presetList = document.getElementById("viewer-window");
  let presetShown = "";
  function presetListUpdate() {
    if (!presetList) return;
    const presets = presetsOf(active);
    const signature = JSON.stringify(presets);
    if (signature === presetShown) return;
    presetShown = signature;
    const first = new Option("Window…", "");
    presetList.replaceChildren(first, ...presets.map((p, i) => new Option(`${p.name} ${p.width}/${p.level}${p.key ? ` (${p.key})` : ""}`, String(i))));
    presetList.hidden = !presets.length;
  }
  if (presetList) {
    presetList.addEventListener("change", () => {
      const preset = presetsOf(active)[Number(presetList.value)];
      if (presetList.value !== "" && preset) {
        propertiesChange({ voiRange: utilities.windowLevel.toLowHighRange(preset.width, preset.level) });
      }
      presetList.value = "";
      viewportOf(active).element.focus();
    });
  }

  // `shownIndex`: the image the cine drew from its cache (cine_cache.js), not Cornerstone's.
  function overlayUpdate(index, shownIndex) {
    const entry = cells[index];
    const shown = viewportOf(index);
    if (!entry || !shown || !entry.corners) return;
    const ids = shown.getImageIds();
    const position = shownIndex ?? shown.getCurrentImageIdIndex();
    const meta = ids.length ? wadors.metaDataManager.get(ids[position]) : undefined;
    const get = (name) => attribute(meta, TAG[name]);
    const neutered = { ALTERED: "neutered", UNALTERED: "entire" }[get("neutered")] || "";
    const sex = [get("sex"), neutered].filter(Boolean).join(" ");
    entry.corners.tl.textContent = [personName(get("patientName")), [get("species"), get("breed")].filter(Boolean).join(", "), sex, ...patientLines(meta)]
      .filter(Boolean)
      .join("\n");
    entry.corners.tr.textContent = [get("owner") && `Owner: ${personName(get("owner"))}`, dicomDate(get("studyDate")), ...lateralityLines(meta)]
      .filter(Boolean)
      .join("\n");
    entry.corners.bl.textContent = [`Se ${get("seriesNumber")} ${get("seriesDescription")}`.trim(), `Im ${position + 1}/${ids.length}`].join("\n");
    const { voiRange } = shown.getProperties();
    // Back to width and centre by the linear function of PS3.3 C.11.2.1.2.1, as the range was made.
    const voi = voiRange && utilities.windowLevel.toWindowLevel(voiRange.lower, voiRange.upper);
    entry.corners.br.textContent = [...cineLines(entry.element), voi ? `W ${Math.round(voi.windowWidth)} L ${Math.round(voi.windowCenter)}` : ""].join("\n");
    markersShow(entry.markers, meta, shown);
    entry.element.dataset.overlayIndex = String(position);
    if (index === active) presetListUpdate();
  }

  function cellPrepare(index) {
    const entry = cells[index];
    entry.corners = {};
    for (const corner of ["tl", "tr", "bl", "br"]) {
      const div = document.createElement("div");
      div.className = `viewer-corner ${corner}`;
      entry.cell.appendChild(div);
      entry.corners[corner] = div;
    }
    entry.markers = markersMake(entry.cell);
    entry.element.addEventListener(CoreEnums.Events.IMAGE_RENDERED, () => overlayUpdate(index));
    entry.cell.addEventListener("mousedown", () => activeSet(index));
    entry.cell.addEventListener("dragover", (event) => {
      event.preventDefault();
      entry.cell.classList.add("drop-target");
    });
    entry.cell.addEventListener("dragleave", () => entry.cell.classList.remove("drop-target"));
    entry.cell.addEventListener("drop", (event) => {
      event.preventDefault();
      entry.cell.classList.remove("drop-target");
      const uid = event.dataTransfer.getData("application/x-series-uid");
      if (uid) {
        activeSet(index);
        seriesShow(index, uid);
      }
    });
  }

  async function seriesShow(index, uid, study = studyUid) {
    const entry = cells[index];
    entry.seriesUid = uid;
    entry.element.dataset.seriesUid = uid;
    stripMark();
    const ids = await imageIds(uid, study);
    if (entry.seriesUid !== uid) return; // another series was asked for meanwhile
    await viewportOf(index).setStack(ids, 0);
    viewportOf(index).render();
  }

  function activeSet(index) {
    active = index;
    presetListUpdate();
    cells.forEach((entry, i) => entry.cell.classList.toggle("active", i === index));
    grid.dataset.active = String(index);
    stripMark();
  }

  function stripMark() {
    const uid = cells[active] && cells[active].seriesUid;
    for (const item of strip.children) item.classList.toggle("shown", item.dataset.seriesUid === uid);
  }

  function layoutSet(layout) {
    const count = LAYOUTS[layout];
    grid.dataset.layout = layout;
    for (const button of document.querySelectorAll("#viewer-toolbar [data-layout]")) {
      button.setAttribute("aria-pressed", String(button.dataset.layout === layout));
    }
    // Cells beyond the layout go, their viewports with them.
    while (cells.length > count) {
      const entry = cells.pop();
      toolGroup.removeViewports(engine.id, entry.viewportId);
      engine.disableElement(entry.viewportId);
      entry.cell.remove();
    }
    const made = [];
    while (cells.length < count) {
      const index = cells.length;
      const cell = document.createElement("div");
      cell.className = "viewer-cell";
      cell.dataset.cell = String(index);
      const cellElement = document.createElement("div");
      cellElement.className = "viewer";
      cell.appendChild(cellElement);
      grid.appendChild(cell);
      const viewportId = `${viewport.id}-${index}`;
      engine.enableElement({ viewportId, type: CoreEnums.ViewportType.STACK, element: cellElement });
      toolGroup.addViewport(viewportId, engine.id);
      cellElement.tabIndex = 0;
      cellElement.addEventListener("keydown", (event) => {
        const delta = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1 }[event.key];
        if (delta) {
          event.preventDefault();
          engine.getViewport(viewportId).scroll(delta);
        }
      });
      cells.push({ cell, element: cellElement, viewportId, seriesUid: undefined });
      cellPrepare(index);
      made.push(index);
    }
    // The first viewport's cell changed size with the grid.
    engine.resize(true, true);
    // A new cell shows the series after the previous cell's, round the study.
    for (const index of made) {
      const previous = seriesList.findIndex((s) => s.uid === cells[index - 1].seriesUid);
      const next = seriesList[(previous + 1) % seriesList.length];
      if (next) seriesShow(index, next.uid);
    }
    if (active >= count) activeSet(0);
    else activeSet(active);
  }

  // The tool on the left button: one at a time. The one it replaces goes passive (a measuring
  // tool's marks stay on the image, can be moved, and are not drawn anew).
  let primaryTool = WindowLevelTool.toolName;
  function primaryToolSet(name) {
    if (!toolGroup.hasTool(name)) toolGroup.addTool(name);
    if (primaryTool !== name && toolGroup.hasTool(primaryTool)) toolGroup.setToolPassive(primaryTool);
    toolGroup.setToolActive(name, { bindings: [{ mouseButton: ToolEnums.MouseBindings.Primary }] });
    primaryTool = name;
    grid.dataset.primaryTool = name;
    for (const button of document.querySelectorAll("#viewer-toolbar [data-tool]")) {
      button.setAttribute("aria-pressed", String(button.dataset.tool === name));
    }
  }

  // Keys the features add (features.js): a key -> { what, run }. Shown in the help.
  const featureKeys = new Map();
  function keyAdd(key, what, run) {
    featureKeys.set(key.toLowerCase(), { what, run });
    SHORTCUTS.splice(SHORTCUTS.length - 1, 0, [key, what]);
  }

  function presentationChange(change) {
    const shown = viewportOf(active);
    // The whole presentation, so zoom and pan stay as they are.
    const selector = { rotation: true, displayArea: true, zoom: true, pan: true };
    const presentation = shown.getViewPresentation(selector);
    shown.setViewPresentation({ ...presentation, ...change(presentation) });
    shown.render();
  }

  function propertiesChange(properties) {
    const shown = viewportOf(active);
    shown.setProperties(properties);
    shown.render();
  }

  function helpToggle(show) {
    const help = document.getElementById("viewer-help");
    if (!help) return;
    if (!help.firstChild) {
      const table = document.createElement("table");
      for (const [key, what] of SHORTCUTS) {
        const row = table.insertRow();
        const keyCell = row.insertCell();
        const kbd = document.createElement("kbd");
        kbd.textContent = key === " " ? "Space" : key;
        keyCell.appendChild(kbd);
        row.insertCell().textContent = what;
      }
      const title = document.createElement("h2");
      title.textContent = "Keyboard shortcuts";
      help.append(title, table);
    }
    help.hidden = show === undefined ? !help.hidden : !show;
  }

  function keyHandle(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest && event.target.closest("input, textarea, select")) return;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    const preset = presetsOf(active).find((p) => p.key === key);
    if (LAYOUT_KEYS[key]) layoutSet(LAYOUT_KEYS[key]);
    else if (preset) {
      propertiesChange({ voiRange: utilities.windowLevel.toLowHighRange(preset.width, preset.level) });
    } else if (key === "i") propertiesChange({ invert: !viewportOf(active).getProperties().invert });
    else if (key === "r") presentationChange((p) => ({ rotation: ((p.rotation || 0) + 90) % 360 }));
    else if (key === "h" || key === "v") {
      // Through the camera, which sets a flip either way (a view presentation's flip only turns it on).
      const shown = viewportOf(active);
      const flip = key === "h" ? "flipHorizontal" : "flipVertical";
      shown.setCamera({ [flip]: !shown[flip] });
      shown.render();
    }
    else if (key === "z") primaryToolSet(ZoomTool.toolName);
    else if (key === "p") primaryToolSet(PanTool.toolName);
    else if (key === "w") primaryToolSet(WindowLevelTool.toolName);
    else if (key === "?") helpToggle();
    else if (featureKeys.has(key)) featureKeys.get(key).run(event);
    else if (key === "Escape" || key === "0") {
      helpToggle(false);
      const shown = viewportOf(active);
      shown.resetProperties();
      shown.resetCamera();
      shown.render();
      primaryToolSet(WindowLevelTool.toolName);
    } else return;
    event.preventDefault();
  }

  // The strip: one entry a series, its thumbnail from WADO-RS (PS3.18 10.4.1.1.4).
  for (const series of seriesList) {
    const item = document.createElement("li");
    item.dataset.seriesUid = series.uid;
    item.draggable = true;
    item.title = "Click: show in the active viewport. Drag onto a viewport: show there.";
    const picture = document.createElement("img");
    picture.alt = "";
    picture.loading = "lazy";
    picture.src = `${dicomwebRoot}studies/${studyUid}/series/${series.uid}/thumbnail`;
    const label = document.createElement("div");
    label.textContent = `${series.number ?? ""} ${series.description || series.modality || ""} (${series.images})`.trim();
    item.append(picture, label);
    item.addEventListener("click", () => seriesShow(active, series.uid));
    item.addEventListener("dragstart", (event) => {
      event.dataTransfer.setData("application/x-series-uid", series.uid);
      event.dataTransfer.effectAllowed = "copy";
    });
    strip.appendChild(item);
  }
  for (const button of document.querySelectorAll("#viewer-toolbar [data-layout]")) {
    button.addEventListener("click", () => layoutSet(button.dataset.layout));
  }
  const helpButton = document.getElementById("viewer-help-button");
  if (helpButton) helpButton.addEventListener("click", () => helpToggle());
  document.addEventListener("keydown", keyHandle);

  cellPrepare(0);
  layoutSet("1x1");
  overlayUpdate(0);

  // A window turned or resized (a tablet, a phone, a side panel opening) changes the cells'
  // size: the canvases follow, or the image stretches and the marks drift off what they mark.
  let resizeQueued = false;
  new ResizeObserver(() => {
    if (resizeQueued) return;
    resizeQueued = true;
    requestAnimationFrame(() => {
      resizeQueued = false;
      engine.resize(true, true);
    });
  }).observe(grid);

  // What the features (features.js) work through: the active viewport and every shown one, the
  // left button's tool, keys, and showing a series in a viewport.
  return {
    engine,
    toolGroup,
    grid,
    dicomwebRoot,
    studyUid,
    seriesImageIds: imageIds,
    activeViewport: () => viewportOf(active),
    activeIndex: () => active,
    activeSet,
    viewports: () => cells.map((_, index) => viewportOf(index)),
    cells: () => cells.map(({ cell, element: cellElement, viewportId, seriesUid: uid }) => ({ cell, element: cellElement, viewportId, seriesUid: uid })),
    layoutSet,
    seriesShow,
    primaryToolSet,
    primaryTool: () => primaryTool,
    keyAdd,
    overlayUpdate,
  };
}

// Veterinary measurements (issue 16): the Vertebral Heart Score, VLAS, the Norberg angle and the
// tibial plateau angle, each a guided point placement (vet/guided.js) in its own module under
// vet/, with the plane geometry in vet/geometry.js. Their buttons and the prompt line are the
// page part templates/imaging/viewer/_vettools_toolbar.html; keys K, J, N and B choose them.
import { addTool, annotation as annotationApi, utilities as toolUtilities } from "@cornerstonejs/tools";
import { guide, planeOf } from "./vet/guided.js";
import { VhsTool } from "./vet/vhs.js";
import { VlasTool, marksShare } from "./vet/vlas.js";
import { NorbergTool } from "./vet/norberg.js";
import { TpaTool } from "./vet/tpa.js";

const TOOLS = [
  { tool: VhsTool, key: "K", what: "Vertebral heart score (guided)" },
  { tool: VlasTool, key: "J", what: "Vertebral left atrial size (guided)" },
  { tool: NorbergTool, key: "N", what: "Norberg angle (guided)" },
  { tool: TpaTool, key: "B", what: "Tibial plateau angle (guided)" },
];

export function start(viewer) {
  const part = document.getElementById("vettools");
  if (!part) return;
  const prompt = document.getElementById("vettools-prompt");
  const { toolGroup } = viewer;

  for (const { tool } of TOOLS) {
    addTool(tool);
    if (!toolGroup.hasTool(tool.toolName)) toolGroup.addTool(tool.toolName);
    // Passive: their marks are drawn and their handles can be moved whatever the left button does.
    toolGroup.setToolPassive(tool.toolName);
  }

  function promptShow(text) {
    prompt.replaceChildren(text);
    prompt.dataset.state = text ? "placing" : "";
  }
  guide.prompt = (text) => promptShow(text);
  // The result with its reference range and source.
  guide.result = (annotation) => {
    const { text, reference } = annotation.data.vetpacs;
    const result = document.createElement("strong");
    result.className = "vettools-result";
    result.textContent = text;
    const source = document.createElement("span");
    source.className = "vettools-reference";
    source.textContent = reference;
    prompt.replaceChildren(result, source);
    prompt.dataset.state = "result";
  };
  // A VLAS that took a VHS's vertebrae follows them when they move.
  guide.changed = (changed, element) => {
    if (changed.metadata.toolName !== VhsTool.toolName) return;
    const vlasTool = toolGroup.getToolInstance(VlasTool.toolName);
    for (const vlas of annotationApi.state.getAllAnnotations()) {
      if (vlas.metadata.toolName === VlasTool.toolName && vlas.data.marksFrom === changed.annotationUID) {
        marksShare(vlas, changed);
        vlasTool.measure(vlas, vlasTool.planeFor(vlas));
        annotationApi.state.triggerAnnotationModified(vlas, element);
      }
    }
  };

  function choose(tool) {
    const instance = toolGroup.getToolInstance(tool.toolName);
    if (instance) instance.abandon(); // chosen again: start afresh
    viewer.primaryToolSet(tool.toolName);
    promptShow(tool.firstPrompt);
  }

  // A left press while one of these is on the left button: a point, taken before Cornerstone's
  // double-click wait would drop a quick second one (vet/guided.js pressTake). The press still
  // makes its viewport the active one, as the display does on any press.
  viewer.grid.addEventListener(
    "mousedown",
    (event) => {
      if (event.button !== 0 || event.ctrlKey || event.shiftKey || event.altKey || event.metaKey) return;
      const chosen = TOOLS.find(({ tool }) => tool.toolName === viewer.primaryTool());
      const element = chosen && event.target.closest(".viewer");
      const instance = element && toolGroup.getToolInstance(chosen.tool.toolName);
      if (!instance || !instance.pressTake(element, event.clientX, event.clientY)) return;
      event.stopPropagation();
      const cell = element.closest(".viewer-cell");
      if (cell) viewer.activeSet(Number(cell.dataset.cell));
    },
    { capture: true },
  );

  for (const { tool, key, what } of TOOLS) {
    const button = part.querySelector(`[data-tool="${tool.toolName}"]`);
    if (button) button.addEventListener("click", () => choose(tool));
    viewer.keyAdd(key, what, () => choose(tool));
  }

  // For the browser test: the centre of an image pixel (column, row) of the active viewport in
  // page coordinates, and the measurements on record (their points as pixels).
  viewer.grid.vettools = {
    pageOf(column, row) {
      const viewport = viewer.activeViewport();
      const world = planeOf(viewport.getCurrentImageId()).pixelToWorld([column, row]);
      const [x, y] = viewport.worldToCanvas(world);
      const rect = viewport.canvas.getBoundingClientRect();
      return [rect.left + x, rect.top + y];
    },
    results() {
      return annotationApi.state
        .getAllAnnotations()
        .filter((a) => TOOLS.some(({ tool }) => tool.toolName === a.metadata.toolName))
        .map((a) => ({
          toolName: a.metadata.toolName,
          uid: a.annotationUID,
          complete: a.data.complete,
          points: a.data.handles.points.length,
          pixels: a.data.handles.points.map((p) => planeOf(a.metadata.referencedImageId).worldToPixel(p)),
          referencedImageId: a.metadata.referencedImageId,
          vetpacs: a.data.vetpacs,
        }));
    },
    // As a save and a restore do: each measurement through JSON, without its result, added back.
    roundTrip() {
      const element = viewer.activeViewport().element;
      for (const kept of this.results()) {
        const saved = JSON.parse(JSON.stringify(annotationApi.state.getAnnotation(kept.uid)));
        delete saved.data.vetpacs;
        annotationApi.state.removeAnnotation(kept.uid);
        annotationApi.state.addAnnotation(saved, element);
      }
      toolUtilities.triggerAnnotationRenderForViewportIds(viewer.viewports().map((v) => v.id));
    },
  };
}

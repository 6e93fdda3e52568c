// Everything of the viewer but its first image (main.js draws that with Cornerstone's core and
// the image loader only): the tools, the display (series strip, layouts, keys, overlays) and the
// features (measuring, veterinary tools, comparing, reporting, annotations, cine). main.js
// import()s this module once the first image is on screen, so that its chunks (the tools, dcmjs,
// the features: most of the bundle) are loaded and compiled after it, not before (build.mjs
// splits the bundle).
import {
  init as toolsInit,
  addTool,
  ToolGroupManager,
  StackScrollTool,
  WindowLevelTool,
  Enums as ToolEnums,
} from "@cornerstonejs/tools";
import { eventTarget, triggerEvent, Enums as CoreEnums } from "@cornerstonejs/core";
import { displayStart } from "./display.js";
import { featuresStart } from "./features.js";

const TOOL_GROUP_ID = "stack-tools";

// The stack tools on the first viewport, then the display and the features through its API.
export async function viewerComplete({ engine, element, viewport, viewportId, dicomwebRoot, studyUid, seriesUid, seriesImageIds }) {
  toolsInit();
  // The tools take an element on as Cornerstone enables it (ELEMENT_ENABLED: its SVG layer for
  // the marks, its mouse, wheel, touch and key listeners). The first viewport was enabled before
  // the tools were loaded, so it is announced again, with the detail Cornerstone's own has.
  triggerEvent(eventTarget, CoreEnums.Events.ELEMENT_ENABLED, { element, viewportId, renderingEngineId: engine.id });
  addTool(StackScrollTool);
  addTool(WindowLevelTool);
  const tools = ToolGroupManager.createToolGroup(TOOL_GROUP_ID);
  tools.addTool(StackScrollTool.toolName);
  tools.addTool(WindowLevelTool.toolName);
  tools.setToolActive(WindowLevelTool.toolName, {
    bindings: [{ mouseButton: ToolEnums.MouseBindings.Primary }],
  });
  tools.setToolActive(StackScrollTool.toolName, {
    bindings: [{ mouseButton: ToolEnums.MouseBindings.Wheel }],
  });
  tools.addViewport(viewportId, engine.id);

  // The series strip, layouts, keyboard tools and corner overlays (display.js).
  const viewer = displayStart({ engine, toolGroup: tools, element, viewport, dicomwebRoot, studyUid, seriesUid, seriesImageIds });
  // Measuring, annotating, comparing, reporting (features.js), each through the display's API.
  if (viewer) await featuresStart({ ...viewer, page: element.dataset });
}

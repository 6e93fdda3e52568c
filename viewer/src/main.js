// The study viewer: the first series of a study as a Cornerstone3D stack viewport, its images
// loaded with the dicom-image-loader's wadors scheme from our own WADO-RS (/dicomweb/, the
// staff session's cookie authenticates the requests, same origin). The page gives the study and
// series UIDs and the DICOMweb root as data attributes on #viewer (imaging/studies/views.py).
import {
  init as coreInit,
  RenderingEngine,
  Enums as CoreEnums,
} from "@cornerstonejs/core";
import {
  init as toolsInit,
  addTool,
  ToolGroupManager,
  StackScrollTool,
  WindowLevelTool,
  Enums as ToolEnums,
} from "@cornerstonejs/tools";
import { init as imageLoaderInit, wadors } from "@cornerstonejs/dicom-image-loader";
import { displayStart } from "./display.js";
import { featuresStart } from "./features.js";

const RENDERING_ENGINE_ID = "vetpacs";
const VIEWPORT_ID = "stack";
const TOOL_GROUP_ID = "stack-tools";

const INSTANCE_NUMBER = "00200013";
const SOP_INSTANCE_UID = "00080018";
const NUMBER_OF_FRAMES = "00280008";

function tagValue(instance, tag) {
  const element = instance[tag];
  return element && element.Value ? element.Value[0] : undefined;
}

// The series metadata (PS3.18 10.4.1.1.3), one image id per frame in instance-number order.
async function seriesImageIds(root, studyUid, seriesUid) {
  const seriesUrl = `${root}studies/${studyUid}/series/${seriesUid}`;
  const answer = await fetch(`${seriesUrl}/metadata`, {
    headers: { Accept: "application/dicom+json" },
    credentials: "same-origin",
  });
  if (!answer.ok) {
    throw new Error(`The series metadata could not be read (HTTP ${answer.status}).`);
  }
  const instances = await answer.json();
  instances.sort((a, b) => (tagValue(a, INSTANCE_NUMBER) ?? 0) - (tagValue(b, INSTANCE_NUMBER) ?? 0));
  const imageIds = [];
  for (const instance of instances) {
    const sop = tagValue(instance, SOP_INSTANCE_UID);
    const frames = Number(tagValue(instance, NUMBER_OF_FRAMES) || 1);
    for (let frame = 1; frame <= frames; frame += 1) {
      const imageId = `wadors:${seriesUrl}/instances/${sop}/frames/${frame}`;
      // The loader reads each image's attributes from here, not from the server again.
      wadors.metaDataManager.add(imageId, instance);
      imageIds.push(imageId);
    }
  }
  return imageIds;
}

function status(element, text, state) {
  const line = document.getElementById("viewer-status");
  if (line) line.textContent = text;
  element.dataset.state = state;
}

async function viewerStart(element) {
  const { dicomwebRoot, studyUid, seriesUid } = element.dataset;
  coreInit();
  toolsInit();
  // The codecs' WebAssembly sits beside this bundle (copied there by build.mjs): nothing is
  // fetched from anywhere else at run time.
  imageLoaderInit({ maxWebWorkers: 1, wasmBasePath: new URL("./codecs/", import.meta.url).href });

  const imageIds = await seriesImageIds(dicomwebRoot, studyUid, seriesUid);
  if (!imageIds.length) {
    status(element, "The series has no images.", "empty");
    return;
  }

  const engine = new RenderingEngine(RENDERING_ENGINE_ID);
  engine.enableElement({
    viewportId: VIEWPORT_ID,
    type: CoreEnums.ViewportType.STACK,
    element,
  });
  const viewport = engine.getViewport(VIEWPORT_ID);

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
  tools.addViewport(VIEWPORT_ID, RENDERING_ENGINE_ID);

  // "rendered" once the features have started too: a click on their buttons before then would
  // go nowhere (the browser tests wait for it, and a person sees the status line say it).
  let ready = false;
  const shown = () => {
    const index = viewport.getCurrentImageIdIndex();
    element.dataset.imageIndex = String(index);
    if (ready) status(element, `Image ${index + 1} of ${imageIds.length}`, "rendered");
  };
  element.addEventListener(CoreEnums.Events.IMAGE_RENDERED, shown);

  // Arrow keys step through the stack as the wheel does.
  element.tabIndex = 0;
  element.addEventListener("keydown", (event) => {
    const delta = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1 }[event.key];
    if (delta) {
      event.preventDefault();
      viewport.scroll(delta);
    }
  });

  await viewport.setStack(imageIds, 0);
  viewport.render();
  // The series strip, layouts, keyboard tools and corner overlays (display.js).
  const viewer = displayStart({ engine, toolGroup: tools, element, viewport, dicomwebRoot, studyUid, seriesUid, seriesImageIds });
  // Measuring, annotating, comparing, reporting (features.js), each through the display's API.
  if (viewer) await featuresStart({ ...viewer, page: element.dataset });
  ready = true;
  shown();
  element.focus();
}

const element = document.getElementById("viewer");
if (element) {
  viewerStart(element).catch((error) => {
    status(element, `The viewer could not open the series: ${error.message || error}`, "failed");
    throw error;
  });
}

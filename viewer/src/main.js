// The study viewer: the first series of a study as a Cornerstone3D stack viewport, its images
// loaded with the dicom-image-loader's wadors scheme from our own WADO-RS (/dicomweb/, the
// staff session's cookie authenticates the requests, same origin). The page gives the study and
// series UIDs and the DICOMweb root as data attributes on #viewer (imaging/studies/views.py).
//
// The first image comes first: this module holds only what draws it (Cornerstone's core and the
// image loader); the tools, the display and the features (viewer_rest.js, most of the bundle)
// are import()ed once that image is on screen (build.mjs splits the bundle into chunks).
import { init as coreInit, RenderingEngine, Enums as CoreEnums } from "@cornerstonejs/core";
import { init as imageLoaderInit, wadors } from "@cornerstonejs/dicom-image-loader";

const RENDERING_ENGINE_ID = "vetpacs";
const VIEWPORT_ID = "stack";

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

// Resolves once the first image has been drawn and the browser has painted a frame with it.
function firstImageShown(element) {
  return new Promise((resolve) => {
    element.addEventListener(
      CoreEnums.Events.IMAGE_RENDERED,
      () => requestAnimationFrame(() => setTimeout(resolve, 0)),
      { once: true },
    );
  });
}

async function viewerStart(element) {
  const { dicomwebRoot, studyUid, seriesUid } = element.dataset;
  // The series metadata is asked for first: it is on the way while the rest starts.
  const imageIdsAsked = seriesImageIds(dicomwebRoot, studyUid, seriesUid);
  coreInit();
  // The codecs' WebAssembly sits beside this bundle (copied there by build.mjs): nothing is
  // fetched from anywhere else at run time.
  imageLoaderInit({ maxWebWorkers: 1, wasmBasePath: new URL("./codecs/", import.meta.url).href });

  const imageIds = await imageIdsAsked;
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

  const shownFirst = firstImageShown(element);
  await viewport.setStack(imageIds, 0);
  viewport.render();
  await shownFirst;
  // The rest of the viewer, its chunks loaded now that the first image is on screen.
  const { viewerComplete } = await import("./viewer_rest.js");
  await viewerComplete({ engine, element, viewport, viewportId: VIEWPORT_ID, dicomwebRoot, studyUid, seriesUid, seriesImageIds });
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

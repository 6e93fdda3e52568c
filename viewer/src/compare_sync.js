// Linking two viewports for comparing (compare.js): scrolling, zoom and pan, and window/level
// follow from one to the other, through Cornerstone3D tools' synchronizers (SynchronizerManager).
//
// The current study and a prior share no frame of reference and seldom the same detector, so
// nothing absolute is copied across: zoom and pan are relative to each image's fitted size
// (createZoomPanSynchronizer; a camera-position synchronizer would copy world coordinates that
// mean nothing in the other study), scrolling moves both by the same step from where each was
// when linked (or by the same distance along the stack when both images carry Image Position
// (Patient), PS3.3 C.7.6.2.1.1), and the window changes by the same proportion of each one's
// own window, except between two CT images, whose Hounsfield units (PS3.3 C.8.2.1.1.x Rescale
// to HU) are the same scale on any scanner: there the window is copied as it is.
import { Enums as CoreEnums, metaData, utilities } from "@cornerstonejs/core";
import { SynchronizerManager, synchronizers } from "@cornerstonejs/tools";
import { wadors } from "@cornerstonejs/dicom-image-loader";

const IDS = ["compare-zoom-pan", "compare-voi", "compare-scroll"];
const IMAGE_POSITION = "00200032";

let linked = null; // { engine, base: Map(viewportId -> { index, window, position }) }

function positionOf(imageId) {
  // Only a position the image itself carries: a radiograph has none, and a default would lie.
  const raw = imageId && wadors.metaDataManager.get(imageId);
  const element = raw && raw[IMAGE_POSITION];
  if (!element || !element.Value || element.Value.length !== 3) return null;
  return element.Value.map(Number);
}

function windowOf(viewport) {
  const { voiRange } = viewport.getProperties();
  return voiRange ? utilities.windowLevel.toWindowLevel(voiRange.lower, voiRange.upper) : null;
}

function isCT(viewport) {
  const series = metaData.get("generalSeriesModule", viewport.getCurrentImageId());
  return Boolean(series && series.modality === "CT");
}

function distance(a, b) {
  return Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
}

function scrollTarget(source, target) {
  const from = linked.base.get(source.id);
  const to = linked.base.get(target.id);
  const ids = target.getImageIds();
  const here = positionOf(source.getCurrentImageId());
  if (here && from.position && to.position) {
    // The same displacement from where each was when linked: the nearest image to it.
    const wanted = [0, 1, 2].map((axis) => to.position[axis] + here[axis] - from.position[axis]);
    let best = -1;
    let bestDistance = Infinity;
    ids.forEach((id, index) => {
      const position = positionOf(id);
      if (!position) return;
      const d = distance(position, wanted);
      if (d < bestDistance) [best, bestDistance] = [index, d];
    });
    if (best >= 0) return best;
  }
  const index = to.index + source.getCurrentImageIdIndex() - from.index;
  return Math.max(0, Math.min(ids.length - 1, index));
}

function scrollSync(_sync, sourceInfo, targetInfo) {
  const source = linked.engine.getViewport(sourceInfo.viewportId);
  const target = linked.engine.getViewport(targetInfo.viewportId);
  if (!source || !target) return undefined;
  const index = scrollTarget(source, target);
  if (index === target.getCurrentImageIdIndex()) return undefined;
  return target.setImageIdIndex(index);
}

function voiSync(_sync, sourceInfo, targetInfo, event) {
  const source = linked.engine.getViewport(sourceInfo.viewportId);
  const target = linked.engine.getViewport(targetInfo.viewportId);
  const { range } = event.detail || {};
  if (!source || !target || !range) return;
  const from = linked.base.get(source.id).window;
  const to = linked.base.get(target.id).window;
  let voiRange;
  if (isCT(source) && isCT(target)) {
    voiRange = { lower: range.lower, upper: range.upper };
  } else if (from && to && from.windowWidth > 0) {
    const now = utilities.windowLevel.toWindowLevel(range.lower, range.upper);
    const scale = to.windowWidth / from.windowWidth;
    voiRange = utilities.windowLevel.toLowHighRange(
      now.windowWidth * scale,
      to.windowCenter + (now.windowCenter - from.windowCenter) * scale,
    );
  } else return;
  target.setProperties({ voiRange });
  target.render();
}

// Link the viewports given (ids in `engine`), each as it is shown now.
export function linkStart(engine, viewportIds) {
  linkStop();
  const viewports = viewportIds.map((id) => engine.getViewport(id)).filter(Boolean);
  if (viewports.length < 2) return false;
  const base = new Map();
  for (const viewport of viewports) {
    base.set(viewport.id, {
      index: viewport.getCurrentImageIdIndex(),
      window: windowOf(viewport),
      position: positionOf(viewport.getCurrentImageId()),
    });
  }
  linked = { engine, base };
  const made = [
    synchronizers.createZoomPanSynchronizer(IDS[0]),
    SynchronizerManager.createSynchronizer(IDS[1], CoreEnums.Events.VOI_MODIFIED, voiSync),
    SynchronizerManager.createSynchronizer(IDS[2], CoreEnums.Events.STACK_NEW_IMAGE, scrollSync),
  ];
  for (const sync of made) {
    for (const viewport of viewports) sync.add({ renderingEngineId: engine.id, viewportId: viewport.id });
  }
  return true;
}

export function linkStop() {
  for (const id of IDS) {
    if (SynchronizerManager.getSynchronizer(id)) SynchronizerManager.destroySynchronizer(id);
  }
  linked = null;
}

export function isLinked() {
  return linked !== null;
}

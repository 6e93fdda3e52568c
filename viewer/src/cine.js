// Cine, loading and the ways round a stack (issue 16): the scroll bar beside each viewport,
// progressive loading with a progress bar, cine at the recorded frame rate, fit, 1:1, the
// magnifying glass, and touch. What the overlay shows of it (age, weight, laterality, rate,
// orientation markers) is overlay.js, which display.js calls.
import { Enums as CoreEnums, eventTarget } from "@cornerstonejs/core";
import { addTool, MagnifyTool } from "@cornerstonejs/tools";
import { wadors } from "@cornerstonejs/dicom-image-loader";
import { cineCacheMake } from "./cine_cache.js";
import { loadingMake, stackLoad } from "./loading.js";
import { scrollbarMake } from "./scrollbar.js";
import { fit, oneToOne, pixelScale } from "./sizing.js";
import { touchStart } from "./touch.js";

// Attributes of the Cine module (PS3.3 C.7.6.5) and the Multi-frame module (C.7.6.6).
const TAG = {
  cineRate: "00180040", // frames per second
  recommendedRate: "00082144", // Recommended Display Frame Rate, frames per second
  frameTime: "00181063", // milliseconds between frames
  frameTimeVector: "00181065", // milliseconds since the previous frame, the first 0 (C.7.6.5.1.2)
};
// A stack of single images (a CT series) records no rate: ten images a second.
const STACK_RATE = 10;

function numbers(meta, tag) {
  const element = meta && meta[tag];
  return (element && Array.isArray(element.Value) ? element.Value : []).map(Number).filter((n) => Number.isFinite(n) && n > 0);
}

// The rate the images were recorded at: Cine Rate, else Recommended Display Frame Rate, else
// from Frame Time, else from the mean of the Frame Time Vector's steps, else the stack default.
export function frameRate(meta) {
  const [cine] = numbers(meta, TAG.cineRate);
  if (cine) return { fps: cine, source: "Cine Rate" };
  const [recommended] = numbers(meta, TAG.recommendedRate);
  if (recommended) return { fps: recommended, source: "Recommended Display Frame Rate" };
  const [frameTime] = numbers(meta, TAG.frameTime);
  if (frameTime) return { fps: 1000 / frameTime, source: "Frame Time" };
  const steps = numbers(meta, TAG.frameTimeVector);
  if (steps.length) return { fps: 1000 / (steps.reduce((a, b) => a + b, 0) / steps.length), source: "Frame Time Vector" };
  return { fps: STACK_RATE, source: "default" };
}

function rounded(fps) {
  return String(Number(fps.toFixed(1)));
}

export function start(viewer) {
  const { engine, toolGroup } = viewer;
  const parts = new Map(); // viewport element -> its scroll bar, loading and cine state

  addTool(MagnifyTool);
  if (!toolGroup.hasTool(MagnifyTool.toolName)) toolGroup.addTool(MagnifyTool.toolName);
  touchStart(viewer);

  function cellIndex(element) {
    return viewer.cells().findIndex((entry) => entry.element === element);
  }

  function overlayRefresh(element) {
    const index = cellIndex(element);
    const part = parts.get(element);
    const cached = part && part.cine.playing && part.cine.path === "cache";
    if (index >= 0) viewer.overlayUpdate(index, cached ? part.cine.lastIndex : undefined);
  }

  function attach(element, viewportId) {
    if (parts.has(element) || !element.parentElement) return;
    const viewport = () => engine.getViewport(viewportId);
    const part = {
      viewportId,
      scrollbar: scrollbarMake(element.parentElement, viewport),
      loading: loadingMake(element.parentElement),
      // path: "render" (Cornerstone draws each frame; the cache is filled) or "cache" (the loop
      // is drawn from the cache, cine_cache.js); loop: the cache path's animation frame.
      // lastIndex: the frame shown; requested: the frame asked of Cornerstone, not yet drawn;
      // stepAt: when the render path last stepped; anchorIndex and anchorAt: the cache path's
      // start, which its clock counts frames from.
      cine: { playing: false, frames: 0, shownAt: [], lastIndex: -1, since: 0, frame: 0, path: "render", loop: 0, fps: 0,
        requested: null, stepAt: 0, anchorIndex: 0, anchorAt: 0 },
      cache: cineCacheMake(),
    };
    parts.set(element, part);
    element.addEventListener(CoreEnums.Events.VIEWPORT_NEW_IMAGE_SET, () => {
      cineStop(element);
      part.cache.clear();
      stackLoad(part.loading, element, viewport());
    });
    element.addEventListener("vetpacs-loading", (event) => part.scrollbar.loadedSet(event.detail.done, event.detail.total));
    element.addEventListener(CoreEnums.Events.IMAGE_RENDERED, () => {
      part.scrollbar.update();
      const shown = viewport();
      element.dataset.pixelScale = pixelScale(shown).toFixed(3);
      const index = shown.getCurrentImageIdIndex();
      if (part.cine.playing && part.cine.path === "render") {
        if (index !== part.cine.lastIndex) frameCounted(element, part);
        part.cine.requested = null; // a frame is drawn (the one asked for, or one scrolled to)
        const count = shown.getImageIds().length;
        part.cache.capture(shown, index, count);
        element.dataset.cineCached = String(part.cache.size());
        part.cine.lastIndex = index;
        if (part.cache.complete(shown, count)) cachePlay(element, part, performance.now());
      } else if (part.cine.path === "render") part.cine.lastIndex = index;
    });
    if (viewport() && viewport().getImageIds().length) {
      part.scrollbar.update();
      stackLoad(part.loading, element, viewport());
    }
  }

  // The rate achieved: frames shown in the last second (drawn by Cornerstone, a render that changed
  // the image, or drawn from the cache), counted on each animation frame while the cine plays.
  function achievedCount(element, part) {
    const now = performance.now();
    const cine = part.cine;
    while (cine.shownAt.length && cine.shownAt[0] < now - 1000) cine.shownAt.shift();
    const span = Math.min(1000, now - cine.since);
    if (span >= 250) element.dataset.cineAchievedFps = rounded((1000 * cine.shownAt.length) / span);
    cine.frame = requestAnimationFrame(() => achievedCount(element, part));
  }

  function frameCounted(element, part) {
    part.cine.frames += 1;
    part.cine.shownAt.push(performance.now());
    element.dataset.cineFrames = String(part.cine.frames);
  }

  // The cine's clock, on each animation frame, one path at a time:
  // - "render": Cornerstone draws the next frame once the one before is drawn and the recorded
  //   rate says it is due (a slow machine shows every frame, later, rather than skipping some,
  //   so the first loop draws each frame once and the cache gets them all); each drawn frame is
  //   kept in the cache (IMAGE_RENDERED, in attach);
  // - "cache": once the cache holds the whole loop, the frame due at the recorded rate is drawn
  //   from it (cine_cache.js); if the presentation changed meanwhile, back to "render".
  function tick(element, part, now) {
    const cine = part.cine;
    if (!cine.playing) return;
    const shown = engine.getViewport(part.viewportId);
    const count = shown ? shown.getImageIds().length : 0;
    const period = 1000 / cine.fps;
    if (count >= 2 && cine.path === "cache") {
      const index = (cine.anchorIndex + Math.floor((now - cine.anchorAt) / period)) % count;
      if (index !== cine.lastIndex) {
        if (part.cache.draw(shown, index)) {
          cine.lastIndex = index;
          frameCounted(element, part);
          part.scrollbar.update(index);
          const cell = cellIndex(element);
          if (cell >= 0) viewer.overlayUpdate(cell, index);
          element.dispatchEvent(new CustomEvent("vetpacs-cine-frame", { detail: { index, path: "cache" } }));
        } else {
          // The window, zoom, a resize...: Cornerstone draws the frame shown as it now is, and
          // the loop on from it, filling the cache anew.
          pathSet(element, part, "render");
          cine.stepAt = now;
          if (cine.lastIndex === shown.getCurrentImageIdIndex()) shown.render();
          else stepTo(shown, cine, cine.lastIndex);
        }
      }
    } else if (count >= 2 && cine.requested === null && now - cine.stepAt >= period) {
      // Due: the next frame. Behind by more than a frame (a slow draw): the clock starts again.
      cine.stepAt = now - cine.stepAt > 2 * period ? now : cine.stepAt + period;
      stepTo(shown, cine, (cine.lastIndex + 1) % count);
    }
    cine.loop = requestAnimationFrame((time) => tick(element, part, time));
  }

  function stepTo(shown, cine, index) {
    cine.requested = index;
    // Drawn: IMAGE_RENDERED clears `requested`; a frame that cannot be loaded is passed over.
    shown.setImageIdIndex(index).catch(() => {
      if (cine.requested === index) {
        cine.lastIndex = index;
        cine.requested = null;
      }
    });
  }

  function pathSet(element, part, path) {
    part.cine.path = path;
    element.dataset.cinePath = path;
    // The tools' marks (their SVG layer) belong to the image Cornerstone drew: hidden while the
    // loop is drawn from the cache.
    for (const layer of element.querySelectorAll(".svg-layer")) layer.style.visibility = path === "cache" ? "hidden" : "";
  }

  function cachePlay(element, part, now) {
    pathSet(element, part, "cache");
    Object.assign(part.cine, { anchorIndex: part.cine.lastIndex, anchorAt: now, requested: null });
  }

  function cinePlay(element) {
    const part = parts.get(element);
    const shown = engine.getViewport(part.viewportId);
    const ids = shown.getImageIds();
    if (ids.length < 2) return;
    const { fps, source } = frameRate(wadors.metaDataManager.get(ids[shown.getCurrentImageIdIndex()]));
    const now = performance.now();
    Object.assign(part.cine, { playing: true, frames: 0, shownAt: [], lastIndex: shown.getCurrentImageIdIndex(), since: now, fps, requested: null, stepAt: now });
    Object.assign(element.dataset, { cinePlaying: "true", cineFps: rounded(fps), cineSource: source, cineFrames: "0" });
    delete element.dataset.cineAchievedFps;
    // A loop cached on an earlier play (and still as the viewport shows it) plays from the cache.
    if (part.cache.complete(shown, ids.length)) cachePlay(element, part, now);
    else pathSet(element, part, "render");
    part.cine.loop = requestAnimationFrame((time) => tick(element, part, time));
    part.cine.frame = requestAnimationFrame(() => achievedCount(element, part));
    buttonsMark();
    overlayRefresh(element);
  }

  function cineStop(element) {
    const part = parts.get(element);
    if (!part || !part.cine.playing) return;
    part.cine.playing = false;
    cancelAnimationFrame(part.cine.frame);
    cancelAnimationFrame(part.cine.loop);
    if (part.cine.path === "cache") {
      // Cornerstone draws the frame the cache showed last, with its marks.
      pathSet(element, part, "render");
      const shown = engine.getViewport(part.viewportId);
      if (shown && part.cine.lastIndex >= 0 && part.cine.lastIndex !== shown.getCurrentImageIdIndex()) {
        shown.setImageIdIndex(part.cine.lastIndex);
      }
    }
    element.dataset.cinePlaying = "false";
    buttonsMark();
    overlayRefresh(element);
  }

  function cineToggle() {
    const element = viewer.cells()[viewer.activeIndex()].element;
    if (!parts.has(element)) return;
    if (parts.get(element).cine.playing) cineStop(element);
    else cinePlay(element);
  }

  function buttonsMark() {
    const button = document.getElementById("viewer-cine-play");
    const entry = viewer.cells()[viewer.activeIndex()];
    const playing = Boolean(entry && parts.get(entry.element)?.cine.playing);
    if (button) {
      button.setAttribute("aria-pressed", String(playing));
      button.textContent = playing ? "Pause" : "Play";
    }
  }

  for (const entry of viewer.cells()) attach(entry.element, entry.viewportId);
  // Viewports made later (a layout of two or four) are attached as Cornerstone enables them.
  eventTarget.addEventListener(CoreEnums.Events.ELEMENT_ENABLED, (event) => {
    const { element, viewportId } = event.detail;
    if (viewer.grid.contains(element)) attach(element, viewportId);
  });
  eventTarget.addEventListener(CoreEnums.Events.ELEMENT_DISABLED, (event) => {
    const { element } = event.detail;
    const part = element && parts.get(element);
    if (!part) return;
    part.cine.playing = false;
    cancelAnimationFrame(part.cine.frame);
    cancelAnimationFrame(part.cine.loop);
    part.cache.clear();
    part.loading.run += 1; // ends its loading
    parts.delete(element);
  });
  viewer.grid.addEventListener("mousedown", () => buttonsMark());

  const actions = {
    play: cineToggle,
    fit: () => fit(viewer.activeViewport()),
    one: () => oneToOne(viewer.activeViewport()),
    magnify: () => viewer.primaryToolSet(MagnifyTool.toolName),
  };
  viewer.keyAdd(" ", "Play / pause the cine (at the recorded frame rate)", actions.play);
  viewer.keyAdd("9", "Fit the image to the viewport", actions.fit);
  viewer.keyAdd("=", "1:1, one image pixel per screen pixel", actions.one);
  viewer.keyAdd("G", "Magnifying glass on the left drag", actions.magnify);
  for (const button of document.querySelectorAll("#viewer-toolbar [data-cine-action]")) {
    button.addEventListener("click", () => actions[button.dataset.cineAction]());
  }
}

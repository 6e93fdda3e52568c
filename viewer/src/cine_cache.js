// The cine's frame cache: cine at the recorded rate once every frame has been drawn once.
//
// Drawing a frame through Cornerstone costs the same on every loop: the modality and VOI lookup
// over every pixel, the image put on a canvas, scaled and turned onto the viewport's canvas, and
// the events and marks that follow (without a graphics card, all of it on the processor). While
// the cine plays its first loop through Cornerstone, each frame Cornerstone has drawn is copied
// from the viewport's canvas into an ImageBitmap (the part of the canvas the image covers, at no
// more pixels than the image has, so a loop takes no more memory than its decoded frames). Once
// every frame of the loop is in, cine.js plays the loop from here: one drawImage a frame.
//
// A frame is drawn from the cache only as Cornerstone drew it: each is kept with its
// presentation (canvas size, VOI, invert, colormap, camera: zoom, pan, rotation, flips) and is
// drawn only while the viewport's presentation is the same. Anything that changes it (window or
// level, a preset, invert, zoom, pan, rotate, flip, reset, a layout or window resize) empties
// the cache and the cine goes back to Cornerstone for a loop, filling it anew.
import { utilities } from "@cornerstonejs/core";

// A loop whose frames take more than this is not cached (it plays through Cornerstone).
export const CINE_CACHE_BYTES = 512 * 1024 * 1024;

// The viewport's presentation: what a cached frame was drawn with. The view as Cornerstone gives
// it relative to the image (rotation, zoom, pan: the same on every slice of a stack, whose camera
// moves from slice to slice), rounded past floating-point noise.
function presentation(viewport) {
  const canvas = viewport.canvas;
  const { voiRange, invert, colormap, interpolationType } = viewport.getProperties();
  const camera = viewport.getCamera();
  const view = viewport.getViewPresentation({ rotation: true, zoom: true, pan: true });
  const round = (value) => (typeof value === "number" ? Math.round(value * 1e4) / 1e4 : value ?? null);
  return JSON.stringify([
    canvas.width,
    canvas.height,
    voiRange ? [round(voiRange.lower), round(voiRange.upper)] : null,
    Boolean(invert),
    colormap ? colormap.name || null : null,
    interpolationType ?? null,
    round(view.rotation),
    round(view.zoom),
    (view.pan || []).map(round),
    (camera.viewUp || []).map(round),
    Boolean(camera.flipHorizontal),
    Boolean(camera.flipVertical),
  ]);
}

// Where the image lies on the canvas, in the canvas's pixels, cut to the canvas.
function imageRect(viewport) {
  const canvas = viewport.canvas;
  const scale = canvas.clientWidth ? canvas.width / canvas.clientWidth : 1;
  const corners = utilities.getViewportImageCornersInWorld(viewport).map((world) => viewport.worldToCanvas(world));
  const xs = corners.map((p) => p[0] * scale);
  const ys = corners.map((p) => p[1] * scale);
  const x = Math.max(0, Math.floor(Math.min(...xs)));
  const y = Math.max(0, Math.floor(Math.min(...ys)));
  const right = Math.min(canvas.width, Math.ceil(Math.max(...xs)));
  const bottom = Math.min(canvas.height, Math.ceil(Math.max(...ys)));
  return right > x && bottom > y ? { x, y, width: right - x, height: bottom - y } : null;
}

export function cineCacheMake() {
  const frames = new Map(); // image index -> { bitmap, rect }
  let key = null; // the presentation every frame in `frames` was drawn with
  let bytes = 0;
  let full = false; // over the budget: this loop plays through Cornerstone

  function clear() {
    for (const { bitmap } of frames.values()) bitmap.close();
    frames.clear();
    key = null;
    bytes = 0;
    full = false;
  }

  return {
    clear,
    size: () => frames.size,
    tooLarge: () => full,

    // After Cornerstone drew image `index` in `viewport`: keep a copy of what it drew.
    capture(viewport, index, count) {
      if (full) return;
      const now = presentation(viewport);
      if (now !== key) {
        clear();
        key = now;
      }
      if (frames.has(index)) return;
      const image = viewport.getCornerstoneImage && viewport.getCornerstoneImage();
      const rect = imageRect(viewport);
      if (!image || !rect) return;
      // At most the image's own pixels: a fitted image larger than its pixels is kept at its
      // size (drawn back scaled, as Cornerstone scales it), a smaller one as shown.
      const shrink = Math.min(1, Math.sqrt((image.columns * image.rows) / (rect.width * rect.height)));
      const width = Math.max(1, Math.round(rect.width * shrink));
      const height = Math.max(1, Math.round(rect.height * shrink));
      if ((bytes + 4 * width * height) * (count / (frames.size + 1)) > CINE_CACHE_BYTES) {
        clear();
        full = true;
        return;
      }
      bytes += 4 * width * height;
      const entry = { bitmap: null, rect };
      frames.set(index, entry);
      // The canvas as it is now (createImageBitmap copies it at the call), kept when ready.
      createImageBitmap(viewport.canvas, rect.x, rect.y, rect.width, rect.height, {
        resizeWidth: width,
        resizeHeight: height,
        resizeQuality: "high",
      }).then(
        (bitmap) => {
          if (frames.get(index) === entry) entry.bitmap = bitmap;
          else bitmap.close();
        },
        () => frames.delete(index),
      );
    },

    // Every one of the stack's `count` frames is in, for the viewport's presentation now.
    complete(viewport, count) {
      if (full || frames.size < count || key !== presentation(viewport)) return false;
      for (const { bitmap } of frames.values()) if (!bitmap) return false;
      return true;
    },

    // Draws frame `index` from the cache onto the viewport's canvas; false (and the cache
    // emptied) when the presentation changed since it was kept, or it is not there.
    draw(viewport, index) {
      const entry = frames.get(index);
      if (!entry || !entry.bitmap || key !== presentation(viewport)) {
        clear();
        return false;
      }
      const canvas = viewport.canvas;
      const context = canvas.getContext("2d");
      context.save();
      context.setTransform(1, 0, 0, 1, 0, 0);
      context.fillStyle = "#000";
      context.fillRect(0, 0, canvas.width, canvas.height);
      context.imageSmoothingEnabled = true;
      context.drawImage(entry.bitmap, entry.rect.x, entry.rect.y, entry.rect.width, entry.rect.height);
      context.restore();
      return true;
    },
  };
}

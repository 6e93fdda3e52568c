// Progressive loading: once a viewport shows the first image of a stack (Cornerstone loads and
// draws that one first, setStack), every other image of the stack is loaded into the cache in
// the background, a few at a time, from the shown one onwards, with a progress bar in the cell
// ("Loading 120/300"). When all are in, the element says so: data-loaded="all" and
// data-loaded-count, which the benchmarks take as "the whole series is ready to scroll".
import { cache, imageLoader } from "@cornerstonejs/core";

// Requests at once: enough to keep the server and the one decoding worker busy, few enough
// that a scroll's own request is not queued behind the whole series.
const AT_ONCE = 4;

export function loadingMake(cell) {
  const box = document.createElement("div");
  box.className = "viewer-loading";
  box.hidden = true;
  box.setAttribute("role", "progressbar");
  box.setAttribute("aria-label", "Images loaded");
  const label = document.createElement("span");
  const bar = document.createElement("div");
  bar.className = "viewer-loading-bar";
  const fill = document.createElement("div");
  bar.appendChild(fill);
  box.append(label, bar);
  cell.appendChild(box);
  return { box, label, fill, run: 0 };
}

function show(loading, element, done, total, failed) {
  element.dataset.loadedCount = String(done);
  element.dataset.imageCount = String(total);
  loading.box.setAttribute("aria-valuemin", "0");
  loading.box.setAttribute("aria-valuemax", String(total));
  loading.box.setAttribute("aria-valuenow", String(done));
  loading.label.textContent = `Loading ${done}/${total}${failed ? `, ${failed} failed` : ""}`;
  loading.fill.style.width = `${total ? (100 * done) / total : 0}%`;
  element.dispatchEvent(new CustomEvent("vetpacs-loading", { detail: { done, total, failed } }));
}

// Loads the viewport's stack into the cache; a newer stack in the same viewport ends this run.
export async function stackLoad(loading, element, viewport) {
  loading.run += 1;
  const run = loading.run;
  const ids = viewport.getImageIds();
  const total = ids.length;
  const start = Math.max(0, viewport.getCurrentImageIdIndex());
  // The shown image first, then on through the stack, then those before it.
  const queue = [...ids.slice(start), ...ids.slice(0, start)].filter((id) => !cache.isLoaded(id));
  let done = total - queue.length;
  let failed = 0;
  element.dataset.loaded = done === total ? "all" : "loading";
  loading.box.hidden = done === total;
  show(loading, element, done, total, failed);
  async function worker() {
    while (queue.length && loading.run === run) {
      const imageId = queue.shift();
      try {
        await imageLoader.loadAndCacheImage(imageId);
        done += 1;
      } catch (error) {
        failed += 1;
        console.warn(`An image could not be loaded: ${imageId}`, error);
      }
      if (loading.run === run) show(loading, element, done, total, failed);
    }
  }
  await Promise.all(Array.from({ length: Math.min(AT_ONCE, queue.length) }, worker));
  if (loading.run !== run) return;
  element.dataset.loaded = failed ? "failed" : "all";
  // A failure stays on screen; a complete stack needs no bar.
  loading.box.hidden = !failed;
}

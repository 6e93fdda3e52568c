// The stack scroll bar beside each viewport: where the shown image is in the stack (the thumb),
// how much of the stack is loaded (the track's fill), and a drag (mouse, pen or finger) on it
// goes to the slice under the pointer.
export function scrollbarMake(cell, viewport) {
  const bar = document.createElement("div");
  bar.className = "viewer-scroll";
  bar.setAttribute("role", "slider");
  bar.setAttribute("aria-orientation", "vertical");
  bar.setAttribute("aria-label", "Image in the stack");
  const loaded = document.createElement("div");
  loaded.className = "viewer-scroll-loaded";
  const thumb = document.createElement("div");
  thumb.className = "viewer-scroll-thumb";
  bar.append(loaded, thumb);
  cell.appendChild(bar);

  function indexAt(clientY) {
    const count = viewport().getImageIds().length;
    const box = bar.getBoundingClientRect();
    const fraction = Math.min(1, Math.max(0, (clientY - box.top) / box.height));
    return Math.round(fraction * (count - 1));
  }
  let dragging = false;
  function go(event) {
    const shown = viewport();
    const index = indexAt(event.clientY);
    if (index !== shown.getCurrentImageIdIndex()) shown.setImageIdIndex(index);
  }
  bar.addEventListener("pointerdown", (event) => {
    if (viewport().getImageIds().length < 2) return;
    dragging = true;
    bar.setPointerCapture(event.pointerId);
    event.preventDefault();
    event.stopPropagation();
    go(event);
  });
  bar.addEventListener("pointermove", (event) => dragging && go(event));
  for (const end of ["pointerup", "pointercancel"]) bar.addEventListener(end, () => (dragging = false));

  return {
    // The thumb's place and size for the image shown (or image `shownIndex`, when the cine draws
    // it from its cache, cine_cache.js); hidden for a single image.
    update(shownIndex) {
      const shown = viewport();
      const count = shown.getImageIds().length;
      bar.hidden = count < 2;
      if (count < 2) return;
      const index = shownIndex ?? shown.getCurrentImageIdIndex();
      thumb.style.height = `${Math.max(100 / count, 4)}%`;
      thumb.style.top = `${(index / (count - 1)) * (100 - Math.max(100 / count, 4))}%`;
      bar.setAttribute("aria-valuemin", "1");
      bar.setAttribute("aria-valuemax", String(count));
      bar.setAttribute("aria-valuenow", String(index + 1));
      bar.setAttribute("aria-valuetext", `Image ${index + 1} of ${count}`);
    },
    loadedSet(done, total) {
      loaded.style.height = `${total ? (100 * done) / total : 0}%`;
    },
  };
}

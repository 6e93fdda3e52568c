// Fit and 1:1. Fit: the whole image in the viewport, centred (Cornerstone's zoom 1 is the fitted
// image), keeping rotation and flips. 1:1: one image pixel on one pixel of the screen (device
// pixels, so a high-density screen also shows each pixel once), about the same centre.

// Screen pixels per image pixel along the rows, as the viewport draws now.
export function pixelScale(viewport) {
  const data = viewport.getImageData && viewport.getImageData();
  if (!data || !data.imageData) return 0;
  const a = viewport.worldToCanvas(data.imageData.indexToWorld([0, 0, 0]));
  const b = viewport.worldToCanvas(data.imageData.indexToWorld([1, 0, 0]));
  return Math.hypot(b[0] - a[0], b[1] - a[1]) * (window.devicePixelRatio || 1);
}

export function fit(viewport) {
  const presentation = viewport.getViewPresentation({ rotation: true, zoom: true, pan: true });
  viewport.setViewPresentation({ ...presentation, zoom: 1, pan: [0, 0] });
  viewport.render();
}

export function oneToOne(viewport) {
  const scale = pixelScale(viewport);
  if (!scale) return;
  viewport.setZoom(viewport.getZoom() / scale);
  viewport.render();
}

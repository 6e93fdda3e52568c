// Touch on a tablet. Cornerstone's tools take a one-finger drag as the primary (left) button,
// so it does what the left drag does (window and level, or the tool chosen); two fingers pinch
// to zoom, and move together to pan (ZoomTool's pinch, whose `pan` option moves the image with
// the fingers' midpoint). The stack is scrolled by the scroll bar beside the image, a finger's
// swipe along it (scrollbar.js).
import { ZoomTool, Enums as ToolEnums } from "@cornerstonejs/tools";

export function touchStart(viewer) {
  const { toolGroup } = viewer;
  if (!toolGroup.hasTool(ZoomTool.toolName)) toolGroup.addTool(ZoomTool.toolName);
  toolGroup.setToolConfiguration(ZoomTool.toolName, { pinchToZoom: true, pan: true });
  // Added to the tool's bindings (Ctrl+wheel stays); a primary binding given later does not
  // replace it, and making the tool passive keeps it (only primary bindings go).
  toolGroup.setToolActive(ZoomTool.toolName, { bindings: [{ numTouchPoints: 2 }] });
}

// A guided point placement as a Cornerstone3D annotation tool: the first click on the image
// starts a measurement, each next click adds the point the prompt line asks for, and the figure
// is drawn as it grows. Once complete, the points are handles: dragging one recomputes. The marks
// are ordinary annotations (annotation.state), so saving, the report and the SR export read
// `data.vetpacs` ({ kind, label, value, unit, text, reference }) without knowing the tool.
// A measurement (vhs.js, vlas.js, norberg.js, tpa.js) extends GuidedTool with:
//   nextPrompt(annotation, plane)  the instruction for the next point, or null when complete;
//   measure(annotation, plane)     data.vetpacs from the points (also while incomplete);
//   draw(figure)                   its lines and circles on the image;
// where `plane` has the points in the image plane (geometry.js) and converts back to the world.
import { getEnabledElement, metaData } from "@cornerstonejs/core";
import { wadors } from "@cornerstonejs/dicom-image-loader";
import {
  AnnotationTool,
  annotation as annotationApi,
  drawing,
  state as toolState,
  utilities as toolUtilities,
  Enums as ToolEnums,
} from "@cornerstonejs/tools";

const { addAnnotation, getAnnotations, removeAnnotation, triggerAnnotationModified, triggerAnnotationCompleted } =
  annotationApi.state;
const { Events, ChangeTypes } = ToolEnums;

// What the page shows: set by vettools.js (the prompt line); a no-op without the page part.
export const guide = {
  prompt: () => {},
  result: () => {},
  changed: () => {},
};

// The image plane of an image id: world <-> [x, y] in world units (mm) along its rows and
// columns from the centre of its first pixel, so anisotropic pixels are measured right. Not
// core's worldToImageCoords / imageToWorldCoords: in 5.14 they scale the column index by
// rowPixelSpacing while the stack viewport draws columns with columnPixelSpacing (the loader's
// names for Pixel Spacing's second and first values, PS3.3 C.7.6.2.1.1: row spacing \ column
// spacing), so on non-square pixels their marks miss the image. The viewport places the image as
// PS3.3 C.7.6.2.1.1 says: pixel (column c, row r) at origin + c·Δcol·rowCosines + r·Δrow·colCosines.
export function planeOf(imageId) {
  const plane = metaData.get("imagePlaneModule", imageId) || {};
  const origin = plane.imagePositionPatient || [0, 0, 0];
  const along = plane.rowCosines || [1, 0, 0]; // along a row: the column index grows
  const down = plane.columnCosines || [0, 1, 0]; // down a column: the row index grows
  const columnSpacing = plane.columnPixelSpacing || 1;
  const rowSpacing = plane.rowPixelSpacing || 1;
  const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
  const toWorld = ([x, y]) => [0, 1, 2].map((i) => origin[i] + x * along[i] + y * down[i]);
  return {
    toPlane(world) {
      const d = [world[0] - origin[0], world[1] - origin[1], world[2] - origin[2]];
      return [dot(d, along), dot(d, down)];
    },
    toWorld,
    // A pixel's centre (column, row) and back, for the test hook and the readable marks.
    pixelToWorld([column, row]) {
      return toWorld([column * columnSpacing, row * rowSpacing]);
    },
    worldToPixel(world) {
      const [x, y] = this.toPlane(world);
      return [x / columnSpacing, y / rowSpacing];
    },
  };
}

// An attribute of the image's header, as the series metadata gave it (DICOM JSON, PS3.18 F.2).
export function headerValue(imageId, tag) {
  const meta = imageId && wadors.metaDataManager.get(imageId);
  const element = meta && meta[tag];
  return element && element.Value ? element.Value : [];
}

// The species from the header (PS3.3 C.7.1.1 Patient Species Description), for the reference range.
export function isFeline(imageId) {
  return /\b(feline|cats?|felis)\b/i.test(String(headerValue(imageId, "00102201")[0] || ""));
}

export function round1(value) {
  return value === null || value === undefined || !Number.isFinite(value) ? null : Math.round(value * 10) / 10;
}

export class GuidedTool extends AnnotationTool {
  constructor(toolProps = {}, defaultToolProps = { supportedInteractionTypes: ["Mouse", "Touch"], configuration: { shadow: true } }) {
    super(toolProps, defaultToolProps);
    this.placing = null; // { annotation, element } while points are still asked for
    this.editData = null;
  }

  // The first click: a new measurement with its first point.
  addNewAnnotation = (evt) => {
    const { currentPoints, element } = evt.detail;
    const annotation = this.createAnnotation(evt, [[...currentPoints.world]]);
    annotation.data.complete = false;
    this.started(annotation, element);
    addAnnotation(annotation, element);
    this.placing = { annotation, element };
    this.update(annotation, element);
    evt.preventDefault();
    return annotation;
  };

  // A hook for a measurement that takes something from another on the same image (VLAS).
  started() {}

  // While this tool is on the left button every click is a point of the measurement being
  // placed, or starts one, before Cornerstone takes it for another annotation's handle: a VLAS
  // starts at the carina where a VHS's handle already is. Only this tool's own handles are taken
  // hold of when nothing is being placed (the others' move with the window tool, W).
  preMouseDownCallback = (evt) => {
    const { element, currentPoints } = evt.detail;
    // Points on one image only: another viewport, or another image of the stack, starts afresh.
    if (this.placing) {
      const { viewport } = getEnabledElement(element);
      const { annotation } = this.placing;
      if (this.placing.element !== element || viewport.getCurrentImageId() !== annotation.metadata.referencedImageId) this.abandon();
    }
    if (!this.placing) {
      const own = getAnnotations(this.getToolName(), element) || [];
      const near = own.some((a) => this.getHandleNearImagePoint(element, a, currentPoints.canvas, 6));
      if (near) return false;
      this.addNewAnnotation(evt);
      return true;
    }
    const { annotation } = this.placing;
    annotation.data.handles.points.push([...currentPoints.world]);
    this.update(annotation, element);
    evt.preventDefault();
    return true;
  };

  // A left press on the image while this tool is on the left button, taken before Cornerstone
  // sees it (vettools.js). Cornerstone holds a press 400 ms in case a double click follows and
  // drops a second press inside that time (tools' mouseDownListener, DOUBLE_CLICK_TOLERANCE_MS):
  // a vet placing the points of a VHS clicks faster than that, and lost points. False for a
  // press on one of this tool's handles: that is a drag, Cornerstone's to follow.
  pressTake(element, clientX, clientY) {
    const enabled = getEnabledElement(element);
    const viewport = enabled && enabled.viewport;
    if (!viewport || !viewport.getCurrentImageId()) return false;
    const rect = viewport.canvas.getBoundingClientRect();
    const canvas = [clientX - rect.left, clientY - rect.top];
    const world = viewport.canvasToWorld(canvas);
    return this.preMouseDownCallback({ detail: { element, currentPoints: { canvas, world } }, preventDefault() {} });
  }

  // Recompute, say what comes next (or the result), render.
  update(annotation, element) {
    const plane = this.planeFor(annotation);
    const next = annotation.data.complete ? null : this.nextPrompt(annotation, plane);
    this.measure(annotation, plane);
    const viewportIds = toolUtilities.viewportFilters.getViewportIdsWithToolToRender(element, this.getToolName());
    if (next) {
      guide.prompt(next, annotation);
    } else {
      const completing = !annotation.data.complete;
      annotation.data.complete = true;
      this.measure(annotation, plane);
      if (this.placing && this.placing.annotation === annotation) this.placing = null;
      guide.result(annotation);
      if (completing) triggerAnnotationCompleted(annotation);
    }
    triggerAnnotationModified(annotation, element, ChangeTypes.HandlesUpdated);
    guide.changed(annotation, element);
    toolUtilities.triggerAnnotationRenderForViewportIds(viewportIds);
  }

  planeFor(annotation) {
    const { points } = annotation.data.handles;
    const plane = planeOf(annotation.metadata.referencedImageId);
    return { ...plane, points: points.map((p) => plane.toPlane(p)) };
  }

  // An unfinished measurement goes when the tool is left (Esc, another tool).
  abandon() {
    if (!this.placing) return;
    const { annotation, element } = this.placing;
    this.placing = null;
    removeAnnotation(annotation.annotationUID);
    guide.prompt("", null);
    toolUtilities.triggerAnnotationRenderForViewportIds(
      toolUtilities.viewportFilters.getViewportIdsWithToolToRender(element, this.getToolName()),
    );
  }

  onSetToolPassive() {
    this.abandon();
  }

  onSetToolDisabled() {
    this.abandon();
  }

  // Only the handles are taken hold of (a click on a line of the figure starts a new one).
  isPointNearTool() {
    return false;
  }

  toolSelectedCallback() {}

  // Points another measurement owns (VLAS's vertebrae taken from a VHS) are not handles here.
  handleCount(annotation) {
    return annotation.data.handles.points.length;
  }

  getHandleNearImagePoint(element, annotation, canvasCoords, proximity) {
    if (this.placing && this.placing.annotation === annotation) return undefined;
    const { viewport } = getEnabledElement(element);
    const { points, textBox } = annotation.data.handles;
    for (let i = 0; i < this.handleCount(annotation); i += 1) {
      const [x, y] = viewport.worldToCanvas(points[i]);
      if (Math.hypot(canvasCoords[0] - x, canvasCoords[1] - y) < proximity) {
        annotation.data.handles.activeHandleIndex = i;
        return points[i];
      }
    }
    const box = textBox && textBox.worldBoundingBox;
    if (box) {
      const topLeft = viewport.worldToCanvas(box.topLeft);
      const bottomRight = viewport.worldToCanvas(box.bottomRight);
      if (canvasCoords[0] >= topLeft[0] && canvasCoords[0] <= bottomRight[0] && canvasCoords[1] >= topLeft[1] && canvasCoords[1] <= bottomRight[1]) {
        annotation.data.handles.activeHandleIndex = null;
        return textBox;
      }
    }
    annotation.data.handles.activeHandleIndex = null;
    return undefined;
  }

  handleSelectedCallback(evt, annotation, handle) {
    const { element } = evt.detail;
    const handleIndex = handle.worldPosition ? undefined : annotation.data.handles.points.findIndex((p) => p === handle);
    annotation.highlighted = true;
    this.editData = { annotation, element, handleIndex, movingTextBox: Boolean(handle.worldPosition) };
    toolState.isInteractingWithTool = true;
    element.addEventListener(Events.MOUSE_DRAG, this.dragged);
    element.addEventListener(Events.MOUSE_UP, this.dropped);
    element.addEventListener(Events.MOUSE_CLICK, this.dropped);
    element.addEventListener(Events.TOUCH_DRAG, this.dragged);
    element.addEventListener(Events.TOUCH_END, this.dropped);
    evt.preventDefault();
  }

  dragged = (evt) => {
    if (!this.editData) return;
    const { annotation, element, handleIndex, movingTextBox } = this.editData;
    const { currentPoints, deltaPoints } = evt.detail;
    if (movingTextBox) {
      const position = annotation.data.handles.textBox.worldPosition;
      for (let i = 0; i < 3; i += 1) position[i] += deltaPoints.world[i];
      annotation.data.handles.textBox.hasMoved = true;
      toolUtilities.triggerAnnotationRenderForViewportIds(
        toolUtilities.viewportFilters.getViewportIdsWithToolToRender(element, this.getToolName()),
      );
      return;
    }
    annotation.data.handles.points[handleIndex] = [...currentPoints.world];
    this.update(annotation, element);
  };

  dropped = () => {
    if (!this.editData) return;
    const { annotation, element } = this.editData;
    annotation.highlighted = false;
    annotation.data.handles.activeHandleIndex = null;
    element.removeEventListener(Events.MOUSE_DRAG, this.dragged);
    element.removeEventListener(Events.MOUSE_UP, this.dropped);
    element.removeEventListener(Events.MOUSE_CLICK, this.dropped);
    element.removeEventListener(Events.TOUCH_DRAG, this.dragged);
    element.removeEventListener(Events.TOUCH_END, this.dropped);
    toolState.isInteractingWithTool = false;
    this.editData = null;
    this.update(annotation, element);
  };

  cancel = () => {
    this.abandon();
  };

  renderAnnotation = (enabledElement, svgDrawingHelper) => {
    const { viewport } = enabledElement;
    const { element } = viewport;
    let annotations = getAnnotations(this.getToolName(), element);
    if (!annotations || !annotations.length) return false;
    annotations = this.filterInteractableAnnotationsForElement(element, annotations);
    if (!annotations || !annotations.length) return false;
    let drawn = false;
    for (const annotation of annotations) {
      if (annotationApi.visibility.isAnnotationVisible(annotation.annotationUID) === false) continue;
      const { annotationUID, data } = annotation;
      const styleSpecifier = { toolGroupId: this.toolGroupId, toolName: this.getToolName(), viewportId: viewport.id, annotationUID };
      const { color, lineWidth, lineDash } = this.getAnnotationStyle({ annotation, styleSpecifier });
      const plane = this.planeFor(annotation);
      // Restored or moved elsewhere: the result follows the points.
      if (!data.vetpacs) this.measure(annotation, plane);
      const canvas = data.handles.points.map((p) => viewport.worldToCanvas(p));
      const toCanvas = (point) => viewport.worldToCanvas(plane.toWorld(point));
      const style = { color, width: lineWidth, lineWidth, lineDash };
      const figure = {
        annotation,
        plane,
        canvas,
        toCanvas,
        line(uid, a, b, options = {}) {
          drawing.drawLine(svgDrawingHelper, annotationUID, uid, a, b, { ...style, ...options });
        },
        circle(uid, centre, radius, options = {}) {
          drawing.drawCircle(svgDrawingHelper, annotationUID, uid, centre, radius, { ...style, ...options });
        },
      };
      this.draw(figure);
      const handles = canvas.slice(0, this.handleCount(annotation));
      drawing.drawHandles(svgDrawingHelper, annotationUID, "handles", handles, { color, handleRadius: 3 });
      drawn = true;
      if (data.complete && data.vetpacs) {
        const textLines = this.textLines(annotation);
        this.renderLinkedTextBoxAnnotation({
          enabledElement,
          svgDrawingHelper,
          annotation,
          styleSpecifier,
          textLines,
          canvasCoordinates: handles,
          placementPoints: handles,
        });
      }
    }
    return drawn;
  };

  // On the image: the result (the prompt line under the toolbar gives the reference in full).
  textLines(annotation) {
    return [annotation.data.vetpacs.text];
  }
}

// Vertebral Left Atrial Size (Malcolm EL, Visser LC, Phillips KL, Johnson LR. Diagnostic value of
// vertebral left atrial size as determined from thoracic radiographs for assessment of left
// atrial size in dogs with myxomatous mitral valve disease. JAVMA 2018;253:1038-1045), on a
// lateral thorax: from the ventral border of the carina to where the caudal border of the left
// atrium meets the dorsal border of the caudal vena cava, transposed onto the spine from the
// cranial edge of T4 and counted in vertebral bodies; ≥ 2.3 suggests left atrial enlargement.
// Points in order: carina, the atrium / caudal vena cava point, then the vertebrae — unless a
// complete VHS on the same image has them: those are taken (data.marksFrom, data.sharedMarks)
// and follow that VHS's marks when they are moved (vettools.js).
import { annotation as annotationApi } from "@cornerstonejs/tools";
import { distance } from "./geometry.js";
import { GuidedTool, round1 } from "./guided.js";
import { marksCount, marksDraw, marksPrompt } from "./vertebrae.js";
import { VHS_AXES, VhsTool } from "./vhs.js";

const REFERENCE = "Dogs: ≥ 2.3 v suggests left atrial enlargement. Malcolm et al. 2018, JAVMA 253:1038.";
const OWN = 2;

const PROMPTS = [
  "VLAS: click the ventral border of the carina.",
  "Click where the caudal border of the left atrium meets the dorsal border of the caudal vena cava.",
];

export class VlasTool extends GuidedTool {
  static toolName = "VetVLAS";
  static firstPrompt = PROMPTS[0];

  // The vertebrae of the latest complete VHS on the same image, if there is one.
  started(annotation) {
    const imageId = annotation.metadata.referencedImageId;
    const vhs = annotationApi.state
      .getAllAnnotations()
      .filter((a) => a.metadata.toolName === VhsTool.toolName && a.metadata.referencedImageId === imageId && a.data.complete)
      .pop();
    if (vhs) marksShare(annotation, vhs);
  }

  marks(annotation, plane) {
    const { sharedMarks } = annotation.data;
    return sharedMarks ? sharedMarks.map((world) => plane.toPlane(world)) : plane.points.slice(OWN);
  }

  nextPrompt(annotation, plane) {
    const { points } = plane;
    if (points.length < OWN) return PROMPTS[points.length];
    return marksPrompt(this.marks(annotation, plane), distance(points[0], points[1]));
  }

  measure(annotation, plane) {
    const { points } = plane;
    const count = points.length >= OWN ? marksCount(this.marks(annotation, plane), distance(points[0], points[1])) : null;
    const complete = annotation.data.complete && count !== null;
    const value = complete ? round1(count) : null;
    annotation.data.vetpacs = {
      kind: "vlas",
      label: "Vertebral left atrial size",
      value,
      unit: "{vertebrae}",
      text: complete ? `VLAS ${value.toFixed(1)} v` : "VLAS (being placed)",
      reference: REFERENCE,
    };
  }

  draw(figure) {
    const { canvas, plane, annotation } = figure;
    const { points } = plane;
    if (canvas.length >= 2) figure.line("vlas", canvas[0], canvas[1]);
    const ends = points.length >= 2 ? [["vlas-end", distance(points[0], points[1])]] : [];
    marksDraw(figure, this.marks(annotation, plane), ends, annotation.data.sharedMarks ? "shared" : "spine");
  }
}

// A VLAS takes (or takes again, after they moved) the vertebra marks of a VHS.
export function marksShare(vlas, vhs) {
  vlas.data.marksFrom = vhs.annotationUID;
  vlas.data.sharedMarks = vhs.data.handles.points.slice(VHS_AXES).map((p) => [...p]);
}

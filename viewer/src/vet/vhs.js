// Vertebral Heart Score (Buchanan JW, Bücheler J. Vertebral scale system to measure canine heart
// size in radiographs. JAVMA 1995;206:194-199), on a lateral thorax: the long axis from the
// ventral border of the left main-stem bronchus at the carina to the cardiac apex; the short axis
// perpendicular to it at the heart's widest part; each transposed onto the thoracic spine from
// the cranial edge of T4 and counted in vertebral bodies to 0.1; VHS = long + short.
// Dogs 9.7 ± 0.5 (breed ranges differ; > 10.5 supports cardiomegaly in the ACVIM consensus on
// myxomatous mitral valve disease, Keene et al. 2019, JVIM 33:1127); cats 7.5 ± 0.3 (Litster &
// Buchanan 2000, JAVMA 216:210).
// Points in order: carina, apex, the short axis's two ends, then T4's cranial edge and each next
// vertebra's (vertebrae.js) until the spine marked covers the longer axis.
import { distance } from "./geometry.js";
import { GuidedTool, isFeline, round1 } from "./guided.js";
import { marksCount, marksDraw, marksPrompt } from "./vertebrae.js";

export const VHS_AXES = 4;

const REFERENCE_DOG =
  "Dogs 9.7 ± 0.5 v (breed ranges differ); ≥ 10.5 supports cardiomegaly (ACVIM MMVD staging, Keene 2019). Buchanan & Bücheler 1995, JAVMA 206:194.";
const REFERENCE_CAT = "Cats 7.5 ± 0.3 v (Litster & Buchanan 2000, JAVMA 216:210). Buchanan & Bücheler 1995, JAVMA 206:194.";

const AXIS_PROMPTS = [
  "VHS: click the ventral border of the carina (the left main-stem bronchus): the long axis starts there.",
  "Click the cardiac apex: the long axis ends there.",
  "Click one side of the heart at its widest, perpendicular to the long axis: the short axis starts there.",
  "Click the opposite side of the heart: the short axis ends there.",
];

export class VhsTool extends GuidedTool {
  static toolName = "VetVHS";
  static firstPrompt = AXIS_PROMPTS[0];

  nextPrompt(annotation, plane) {
    const { points } = plane;
    if (points.length < VHS_AXES) return AXIS_PROMPTS[points.length];
    const longest = Math.max(distance(points[0], points[1]), distance(points[2], points[3]));
    return marksPrompt(points.slice(VHS_AXES), longest);
  }

  measure(annotation, plane) {
    const { points } = plane;
    const marks = points.slice(VHS_AXES);
    const long = points.length >= 2 ? marksCount(marks, distance(points[0], points[1])) : null;
    const short = points.length >= 4 ? marksCount(marks, distance(points[2], points[3])) : null;
    const complete = annotation.data.complete && long !== null && short !== null;
    const value = complete ? round1(long + short) : null;
    annotation.data.vetpacs = {
      kind: "vhs",
      label: "Vertebral heart score",
      value,
      unit: "{vertebrae}",
      text: complete
        ? `VHS ${value.toFixed(1)} v (long ${round1(long).toFixed(1)} + short ${round1(short).toFixed(1)})`
        : "VHS (being placed)",
      reference: isFeline(annotation.metadata.referencedImageId) ? REFERENCE_CAT : REFERENCE_DOG,
      long: round1(long),
      short: round1(short),
    };
  }

  draw(figure) {
    const { canvas, plane } = figure;
    const { points } = plane;
    if (canvas.length >= 2) figure.line("long", canvas[0], canvas[1]);
    if (canvas.length >= 4) figure.line("short", canvas[2], canvas[3]);
    const ends = [];
    if (points.length >= 2) ends.push(["long-end", distance(points[0], points[1])]);
    if (points.length >= 4) ends.push(["short-end", distance(points[2], points[3])]);
    marksDraw(figure, points.slice(VHS_AXES), ends);
  }
}

// Norberg angle, on a ventrodorsal hip-extended view: each femoral head's centre (the circle
// through three points of its outline), the line joining the two centres, and from each centre
// the line to the craniolateral rim of its own acetabulum; the angle at each centre between the
// line to the other centre and the line to its rim. About ≥ 105° is taken as normal congruency
// in dogs (the FCI hip scoring scheme; Norberg angle after I. Norberg, in Olsson 1961).
// Points in order: three on the first femoral head's outline, three on the second's, the rim
// over the first, the rim over the second. The sides are named from the image: by the centres'
// columns, and as the patient's when Patient Orientation (0020,0020, PS3.3 C.7.6.1.1.1) says
// which way the rows run.
import { angleAt, circleThrough } from "./geometry.js";
import { GuidedTool, headerValue, round1 } from "./guided.js";

const REFERENCE = "Dogs: ≥ 105° taken as normal congruency (FCI hip scoring). Norberg angle, VD hip-extended view.";

const PROMPTS = [
  "Norberg: click a point on the outline of the first femoral head (1 of 3).",
  "Click a second point on the outline of the first femoral head (2 of 3).",
  "Click a third point on the outline of the first femoral head (3 of 3).",
  "Click a point on the outline of the other femoral head (1 of 3).",
  "Click a second point on the outline of the other femoral head (2 of 3).",
  "Click a third point on the outline of the other femoral head (3 of 3).",
  "Click the craniolateral acetabular rim over the first femoral head.",
  "Click the craniolateral acetabular rim over the other femoral head.",
];

// The names of the image's left and right: the patient's side when the rows' direction is known.
function sideNames(imageId) {
  const rows = String(headerValue(imageId, "00200020")[0] || "");
  if (rows.startsWith("L")) return ["right", "left"]; // columns run to the patient's left
  if (rows.startsWith("R")) return ["left", "right"];
  return ["image left", "image right"];
}

export class NorbergTool extends GuidedTool {
  static toolName = "VetNorberg";
  static firstPrompt = PROMPTS[0];

  nextPrompt(annotation, plane) {
    return plane.points.length < 8 ? PROMPTS[plane.points.length] : null;
  }

  circles(points) {
    return [points.length >= 3 ? circleThrough(...points.slice(0, 3)) : null, points.length >= 6 ? circleThrough(...points.slice(3, 6)) : null];
  }

  measure(annotation, plane) {
    const { points } = plane;
    const [first, second] = this.circles(points);
    let angles = null;
    if (annotation.data.complete && first && second && points.length >= 8) {
      const firstAngle = angleAt(first.centre, second.centre, points[6]);
      const secondAngle = angleAt(second.centre, first.centre, points[7]);
      const names = sideNames(annotation.metadata.referencedImageId);
      // The head further left on the image first.
      const byColumn = first.centre[0] <= second.centre[0];
      angles = [
        { side: names[0], angle: round1(byColumn ? firstAngle : secondAngle) },
        { side: names[1], angle: round1(byColumn ? secondAngle : firstAngle) },
      ];
    }
    const value = angles ? Math.min(angles[0].angle, angles[1].angle) : null;
    annotation.data.vetpacs = {
      kind: "norberg",
      label: "Norberg angle",
      value,
      unit: "deg",
      text: angles ? `Norberg ${angles.map((a) => `${a.side} ${a.angle.toFixed(1)}°`).join(", ")}` : "Norberg (being placed)",
      reference: REFERENCE,
      angles,
    };
  }

  draw(figure) {
    const { canvas, plane, toCanvas } = figure;
    const { points } = plane;
    const circles = this.circles(points);
    circles.forEach((circle, i) => {
      if (!circle) return;
      const centre = toCanvas(circle.centre);
      const onIt = canvas[3 * i];
      figure.circle(`head-${i}`, centre, Math.hypot(onIt[0] - centre[0], onIt[1] - centre[1]));
      figure.circle(`centre-${i}`, centre, 2);
      if (points.length > 6 + i) figure.line(`rim-${i}`, centre, canvas[6 + i]);
    });
    if (circles[0] && circles[1]) figure.line("centres", toCanvas(circles[0].centre), toCanvas(circles[1].centre));
  }
}


// Tibial plateau angle (Slocum B, Slocum TD. Tibial plateau leveling osteotomy for repair of
// cranial cruciate ligament rupture in the canine. Vet Clin North Am Small Anim Pract
// 1993;23:777-795), on a mediolateral view of the stifle and tibia with the condyles
// superimposed: the plateau line from the cranial to the caudal edge of the medial tibial
// plateau; the functional axis from the intercondylar eminence to the centre of the talus; TPA is
// the angle between the plateau line and the perpendicular to the functional axis, that is 90°
// less the angle between the plateau line and the axis. Typical normal about 18-25°. TPLO
// planning also needs the saw blade's radius and a calibrated image (the 25 mm ball).
// Points in order: cranial plateau edge, caudal plateau edge, intercondylar eminence, talus centre.
import { angleBetweenLines } from "./geometry.js";
import { GuidedTool, round1 } from "./guided.js";

const REFERENCE =
  "Typical normal about 18–25°. TPLO planning: calibrate with the 25 mm ball. Slocum & Slocum 1993, Vet Clin North Am Small Anim Pract 23:777.";

const PROMPTS = [
  "TPA: click the cranial edge of the medial tibial plateau.",
  "Click the caudal edge of the medial tibial plateau.",
  "Click the intercondylar eminence: the functional axis starts there.",
  "Click the centre of the talus: the functional axis ends there.",
];

export class TpaTool extends GuidedTool {
  static toolName = "VetTPA";
  static firstPrompt = PROMPTS[0];

  nextPrompt(annotation, plane) {
    return plane.points.length < 4 ? PROMPTS[plane.points.length] : null;
  }

  measure(annotation, plane) {
    const { points } = plane;
    const complete = annotation.data.complete && points.length >= 4;
    const value = complete ? round1(90 - angleBetweenLines([points[0], points[1]], [points[2], points[3]])) : null;
    annotation.data.vetpacs = {
      kind: "tpa",
      label: "Tibial plateau angle",
      value,
      unit: "deg",
      text: complete ? `TPA ${value.toFixed(1)}°` : "TPA (being placed)",
      reference: REFERENCE,
    };
  }

  draw(figure) {
    const { canvas, plane, toCanvas } = figure;
    const { points } = plane;
    if (canvas.length >= 2) figure.line("plateau", canvas[0], canvas[1]);
    if (canvas.length >= 4) {
      figure.line("axis", canvas[2], canvas[3]);
      // The perpendicular to the functional axis through the eminence, as long as the plateau.
      const [e, t] = [points[2], points[3]];
      const size = Math.hypot(t[0] - e[0], t[1] - e[1]) || 1;
      const normal = [-(t[1] - e[1]) / size, (t[0] - e[0]) / size];
      const half = Math.hypot(points[1][0] - points[0][0], points[1][1] - points[0][1]) / 2;
      figure.line("perpendicular", toCanvas([e[0] - normal[0] * half, e[1] - normal[1] * half]), toCanvas([e[0] + normal[0] * half, e[1] + normal[1] * half]), {
        lineDash: "4,3",
      });
    }
  }
}

// The thoracic vertebrae marked along the spine, the scale of the Vertebral Heart Score and of
// VLAS: the user clicks the cranial edge of T4, then the cranial edge of each next vertebra (the
// caudal edge of the one before) until the marks cover the longest length to transpose. Each
// vertebra is measured on its own, so a length ending inside one counts its fraction of that
// vertebra's own length (Buchanan & Bücheler 1995, JAVMA 206:194).
import { inVertebrae, pointAlong, spineLength, vertebraLengths } from "./geometry.js";

// The thoracic vertebra whose cranial edge the mark at `index` is (0 -> T4).
function vertebraName(index) {
  return `T${4 + index}`;
}

// The next mark to ask for, or null when the marks cover `longest` (at least one vertebra).
export function marksPrompt(marks, longest) {
  if (!marks.length) return "Click the cranial edge of T4: the axes are counted from there.";
  const lengths = vertebraLengths(marks);
  if (lengths.length && spineLength(lengths) >= longest) return null;
  const covered = lengths.length ? ` (${lengths.length} marked, about ${inVertebrae(longest, lengths).toFixed(1)} needed)` : "";
  return `Click the cranial edge of ${vertebraName(marks.length)}, the caudal end of ${vertebraName(marks.length - 1)}${covered}.`;
}

// A length in vertebral bodies from the cranial edge of T4, or null without a whole vertebra.
export function marksCount(marks, length) {
  return inVertebrae(length, vertebraLengths(marks));
}

// The spine as drawn: a tick across it at each mark, and a longer one where each transposed
// length ends (`ends`: [[uid, length]]), so the count can be checked by eye.
export function marksDraw(figure, marks, ends, uidPrefix = "spine") {
  const canvasMarks = marks.map(figure.toCanvas);
  const tick = (uid, point, direction, half, options) => {
    const normal = [-direction[1], direction[0]];
    const a = [point[0] + normal[0] * half, point[1] + normal[1] * half];
    const b = [point[0] - normal[0] * half, point[1] - normal[1] * half];
    figure.line(uid, a, b, options);
  };
  for (let i = 0; i < canvasMarks.length; i += 1) {
    const from = canvasMarks[Math.max(0, i - 1)];
    const to = canvasMarks[Math.min(canvasMarks.length - 1, i + 1)];
    const size = Math.hypot(to[0] - from[0], to[1] - from[1]) || 1;
    tick(`${uidPrefix}-tick-${i}`, canvasMarks[i], [(to[0] - from[0]) / size, (to[1] - from[1]) / size], 8);
    if (i) figure.line(`${uidPrefix}-segment-${i}`, canvasMarks[i - 1], canvasMarks[i], { lineDash: "2,3" });
  }
  if (marks.length < 2) return;
  for (const [uid, length] of ends) {
    const { point, direction } = pointAlong(marks, length);
    const a = figure.toCanvas(point);
    const b = figure.toCanvas([point[0] + direction[0], point[1] + direction[1]]);
    const size = Math.hypot(b[0] - a[0], b[1] - a[1]) || 1;
    tick(`${uidPrefix}-${uid}`, a, [(b[0] - a[0]) / size, (b[1] - a[1]) / size], 16, { lineDash: "4,2" });
  }
}

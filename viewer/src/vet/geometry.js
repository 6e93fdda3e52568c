// Plane geometry for the veterinary measurements: points are [x, y] in the image plane in world
// units (mm along the image's rows and columns when it has a pixel spacing, pixels otherwise),
// so a non-square pixel counts its row and column spacing (PS3.3 C.7.6.2.1.1 Pixel Spacing) and
// the results, ratios and angles, do not depend on the zoom, rotation or flip of the display.

export function distance(a, b) {
  return Math.hypot(b[0] - a[0], b[1] - a[1]);
}

export function degrees(radians) {
  return (radians * 180) / Math.PI;
}

// The angle at `vertex` between the rays to `a` and to `b`, 0..180°.
export function angleAt(vertex, a, b) {
  const u = [a[0] - vertex[0], a[1] - vertex[1]];
  const v = [b[0] - vertex[0], b[1] - vertex[1]];
  const cosine = (u[0] * v[0] + u[1] * v[1]) / (Math.hypot(...u) * Math.hypot(...v));
  return degrees(Math.acos(Math.max(-1, Math.min(1, cosine))));
}

// The angle between two lines (not rays), 0..90°: each given by two points.
export function angleBetweenLines([a1, a2], [b1, b2]) {
  const u = [a2[0] - a1[0], a2[1] - a1[1]];
  const v = [b2[0] - b1[0], b2[1] - b1[1]];
  const cosine = Math.abs(u[0] * v[0] + u[1] * v[1]) / (Math.hypot(...u) * Math.hypot(...v));
  return degrees(Math.acos(Math.min(1, cosine)));
}

// The circle through three points (the circumcircle): { centre, radius }, or null when they lie
// on one line. The femoral head's outline is taken as a circle (Norberg angle).
export function circleThrough(a, b, c) {
  const d = 2 * (a[0] * (b[1] - c[1]) + b[0] * (c[1] - a[1]) + c[0] * (a[1] - b[1]));
  if (Math.abs(d) < 1e-9) return null;
  const a2 = a[0] ** 2 + a[1] ** 2;
  const b2 = b[0] ** 2 + b[1] ** 2;
  const c2 = c[0] ** 2 + c[1] ** 2;
  const centre = [
    (a2 * (b[1] - c[1]) + b2 * (c[1] - a[1]) + c2 * (a[1] - b[1])) / d,
    (a2 * (c[0] - b[0]) + b2 * (a[0] - c[0]) + c2 * (b[0] - a[0])) / d,
  ];
  return { centre, radius: distance(centre, a) };
}

// The lengths of the vertebral bodies marked along the spine: marks[0] is the cranial edge of
// T4, marks[i] the cranial edge of the i-th vertebra after it (the caudal edge of the one before).
export function vertebraLengths(marks) {
  const lengths = [];
  for (let i = 1; i < marks.length; i += 1) lengths.push(distance(marks[i - 1], marks[i]));
  return lengths;
}

// A length transposed onto the spine from the cranial edge of T4 and counted in vertebral
// bodies (Buchanan & Bücheler 1995): each whole vertebra it covers counts 1, the vertebra it ends
// in counts the part covered over that vertebra's own length. Beyond the last marked vertebra
// the last one's length is used again (the user marked too few for a handle moved later).
export function inVertebrae(length, lengths) {
  if (!lengths.length) return null;
  let rest = length;
  let count = 0;
  for (const each of lengths) {
    if (rest <= each) return count + rest / each;
    rest -= each;
    count += 1;
  }
  return count + rest / lengths[lengths.length - 1];
}

// The total length of the marked vertebrae, to know when enough have been marked.
export function spineLength(lengths) {
  return lengths.reduce((sum, each) => sum + each, 0);
}

// The point at `length` along the polyline of marks from marks[0] (beyond its end, along its
// last segment), and the direction of the segment it lies on: where a transposed axis ends.
export function pointAlong(marks, length) {
  let rest = length;
  for (let i = 1; i < marks.length; i += 1) {
    const each = distance(marks[i - 1], marks[i]);
    const last = i === marks.length - 1;
    if (rest <= each || last) {
      const t = each ? rest / each : 0;
      const a = marks[i - 1];
      const b = marks[i];
      return {
        point: [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t],
        direction: each ? [(b[0] - a[0]) / each, (b[1] - a[1]) / each] : [1, 0],
      };
    }
    rest -= each;
  }
  return { point: marks[0], direction: [1, 0] };
}

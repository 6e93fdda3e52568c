// The viewer's features beyond the display, each a module with `start(viewer)`: `viewer` is what
// display.js returns (the active viewport and every shown one, the left button's tool, keys,
// showing a series) plus `page`, the #viewer element's data attributes (study id, the API's
// URLs). Each feature finds its own part of the page (templates/imaging/viewer/) and does
// nothing when it is not there. They start in this order; one that fails does not stop the rest.
import * as cine from "./cine.js";
import * as measure from "./measure.js";
import * as vettools from "./vettools.js";
import * as compare from "./compare.js";
import * as report from "./report.js";
import * as send from "./send.js";
// Last: it restores the saved marks of every tool the others added.
import * as annotations from "./annotations.js";

const FEATURES = [cine, measure, vettools, compare, report, send, annotations];

export async function featuresStart(viewer) {
  for (const feature of FEATURES) {
    try {
      await feature.start(viewer);
    } catch (error) {
      console.error(`A viewer feature could not start: ${error.message || error}`);
    }
  }
}

// Comparing (issue 16): on opening, the study is hung by its hanging protocol (the thorax three
// views side by side…, imaging/studies/hanging.py); the side panel lists the animal's other
// studies (by its record and the records merged into it, imaging/studies/priors.py), and
// "Compare" hangs the current series on the left and the prior's matching series (same view,
// body part, description) on the right, linked: scrolling, zoom and pan and the window follow
// from one to the other (compare_sync.js) until "Link" is turned off.
import { Enums as CoreEnums } from "@cornerstonejs/core";
import { isLinked, linkStart, linkStop } from "./compare_sync.js";

const STATUS = { unread: "unread", draft: "draft report", final: "reported", amended: "reported (amended)" };

async function json(url) {
  const answer = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  const body = await answer.json().catch(() => ({}));
  if (!answer.ok) throw new Error((body.error && body.error.message) || `HTTP ${answer.status}`);
  return body;
}

// A label at the top of a viewport ("Right lateral", "Prior 2025-03-02"), shown while the cell
// still shows the series it was put there for.
function labelSet(viewer, index, text, { prior = false } = {}) {
  const cell = viewer.cells()[index];
  if (!cell) return;
  let label = cell.cell.querySelector(".viewer-label");
  if (!label) {
    label = document.createElement("div");
    label.className = "viewer-label";
    cell.cell.appendChild(label);
    cell.element.addEventListener(CoreEnums.Events.IMAGE_RENDERED, () => {
      label.hidden = cell.element.dataset.seriesUid !== label.dataset.seriesUid;
    });
  }
  label.textContent = text;
  label.classList.toggle("prior", prior);
  label.dataset.seriesUid = cell.element.dataset.seriesUid || "";
  label.hidden = !text;
}

async function hang(viewer, url) {
  const hanging = await json(url);
  if (!hanging.protocol) return;
  viewer.layoutSet(hanging.layout);
  viewer.grid.dataset.hangingProtocol = hanging.protocol.name;
  const shown = hanging.viewports
    .filter((entry) => entry.series_uid && entry.position <= viewer.cells().length)
    .map(async (entry) => {
      // A viewport that already shows the series keeps it (and the image the reader is on: the
      // first image is drawn before the features start, main.js).
      if (viewer.cells()[entry.position - 1].seriesUid !== entry.series_uid) {
        await viewer.seriesShow(entry.position - 1, entry.series_uid);
      }
      labelSet(viewer, entry.position - 1, entry.matched ? entry.label : "");
    });
  await Promise.all(shown);
  viewer.activeSet(0);
}

function linkButtonSet(button, state) {
  if (!button) return;
  button.disabled = state === "off";
  button.setAttribute("aria-pressed", String(state === "on"));
  button.textContent = state === "on" ? "Linked" : "Link";
}

export async function start(viewer) {
  const panel = document.getElementById("compare-panel");
  if (!panel) return;
  const status = document.getElementById("compare-status");
  const list = document.getElementById("compare-priors");
  const linkButton = document.getElementById("compare-link");

  try {
    await hang(viewer, panel.dataset.hangingUrl);
  } catch (error) {
    console.warn(`The study could not be hung by its protocol: ${error.message || error}`);
  }

  async function compare(prior, item) {
    const cells = viewer.cells();
    const current = (cells[viewer.activeIndex()] || cells[0]).seriesUid;
    const match = prior.matches[current] || (prior.series[0] && prior.series[0].uid);
    if (!match) return;
    linkStop();
    linkButtonSet(linkButton, "off");
    viewer.layoutSet("1x2");
    await Promise.all([viewer.seriesShow(0, current), viewer.seriesShow(1, match, prior.study_uid)]);
    labelSet(viewer, 0, "Current");
    labelSet(viewer, 1, `${prior.earlier ? "Prior" : "Later"} ${prior.date || "(no date)"}`, { prior: true });
    viewer.activeSet(0);
    for (const other of list.children) other.setAttribute("aria-current", String(other === item));
    viewer.grid.dataset.comparing = String(prior.pk);
    link(true);
  }

  function link(on) {
    if (on && viewer.cells().length >= 2) {
      const ids = viewer.cells().slice(0, 2).map((cell) => cell.viewportId);
      linkButtonSet(linkButton, linkStart(viewer.engine, ids) ? "on" : "off");
    } else {
      linkStop();
      linkButtonSet(linkButton, viewer.cells().length >= 2 ? "ready" : "off");
    }
    viewer.grid.dataset.linked = String(isLinked());
  }

  if (linkButton) linkButton.addEventListener("click", () => link(!isLinked()));
  // Whatever changes the layout (a button, a key, a protocol): one viewport leaves nothing to
  // link; two or more may be linked by hand.
  const layoutChanged = () => {
    if (viewer.cells().length < 2) link(false);
    else if (!isLinked()) linkButtonSet(linkButton, "ready");
  };
  new MutationObserver(layoutChanged).observe(viewer.grid, { attributes: true, attributeFilter: ["data-layout"] });
  layoutChanged();

  let answer;
  try {
    answer = await json(panel.dataset.priorsUrl);
  } catch (error) {
    status.textContent = `The animal's other studies could not be read: ${error.message || error}`;
    return;
  }
  if (!answer.linked) return; // the panel says so already
  status.textContent = answer.priors.length
    ? `${answer.priors.length} other ${answer.priors.length === 1 ? "study" : "studies"}, newest first.`
    : "No other studies of this animal.";
  for (const prior of answer.priors) {
    const item = document.createElement("li");
    item.dataset.studyPk = String(prior.pk);
    const title = document.createElement("strong");
    title.textContent = `${prior.date || "No date"} · ${prior.modalities.join(", ") || "—"}`;
    const what = document.createElement("div");
    what.textContent = [prior.description, prior.body_parts.join(", ")].filter(Boolean).join(" · ") || "No description";
    const counts = document.createElement("div");
    counts.className = "muted small";
    counts.textContent = `${prior.series_count} series, ${prior.image_count} images · ${STATUS[prior.report_status] || prior.report_status}`;
    const actions = document.createElement("div");
    actions.className = "compare-actions";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "button compare-button";
    button.textContent = "Compare";
    button.title = "Show it beside the current series, linked";
    button.disabled = !prior.series.length;
    button.addEventListener("click", () => compare(prior, item));
    const open = document.createElement("a");
    open.href = prior.viewer_url;
    open.textContent = "Open";
    actions.append(button, open);
    item.append(title, what, counts, actions);
    list.appendChild(item);
  }
}

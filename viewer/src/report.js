// The report beside the images (templates/imaging/viewer/_report_panel.html): the study page's
// report form (draft, sign, amend) posted to the same view, which answers this panel with JSON
// and the panel drawn again (imaging/reports/panel.py); a template picker; and buttons that put
// the measurements and the key images into the findings at the cursor.
import { annotation } from "@cornerstonejs/tools";

// Every measurement's one-line result, as its tool keeps it on the annotation (features.js's
// contract: annotation.data.vetpacs.text); marks without one (a plain arrow, say) are left out.
export function measurementLines() {
  const all = annotation.state.getAllAnnotations() || [];
  return all
    .map((mark) => mark?.data?.vetpacs?.text)
    .filter((text) => typeof text === "string" && text.trim())
    .map((text) => text.trim());
}

function seriesNumbers() {
  const data = document.getElementById("viewer-series");
  const numbers = new Map();
  if (!data) return numbers;
  JSON.parse(data.textContent).forEach((series, index) => {
    numbers.set(series.uid, series.number ?? index + 1);
  });
  return numbers;
}

// "Key image: series N image M": M as the overlay counts (the image's place in the series'
// stack, one per frame), from viewer.keyImages ({seriesUid, sopInstanceUid, frame, imageId}).
export async function keyImageLines(viewer) {
  const keys = Array.isArray(viewer.keyImages) ? viewer.keyImages : [];
  const numbers = seriesNumbers();
  const lines = [];
  for (const key of keys) {
    if (!key || !key.seriesUid) continue;
    let place = -1;
    try {
      const ids = await viewer.seriesImageIds(key.seriesUid);
      place = ids.indexOf(key.imageId);
      if (place < 0 && key.sopInstanceUid) {
        const frame = `/instances/${key.sopInstanceUid}/frames/${key.frame || 1}`;
        place = ids.findIndex((id) => id.endsWith(frame));
      }
    } catch (error) {
      console.warn(`Key image's series not read: ${error.message || error}`);
    }
    const series = numbers.get(key.seriesUid) ?? "?";
    lines.push(`Key image: series ${series} image ${place >= 0 ? place + 1 : "?"}`);
  }
  return lines;
}

// At the cursor, each on its own line; the cursor ends after them.
function insertLines(textarea, lines) {
  const start = textarea.selectionStart ?? textarea.value.length;
  const end = textarea.selectionEnd ?? start;
  const before = textarea.value.slice(0, start);
  const after = textarea.value.slice(end);
  const text =
    (before && !before.endsWith("\n") ? "\n" : "") + lines.join("\n") + (after && !after.startsWith("\n") ? "\n" : "");
  textarea.setRangeText(text, start, end, "end");
  textarea.dispatchEvent(new Event("input", { bubbles: true }));
  textarea.focus();
}

function said(panel, text, count) {
  const status = panel.querySelector("#viewer-report-inserted");
  if (!status) return;
  status.textContent = text;
  status.dataset.inserted = String(count);
}

function templateUse(panel) {
  const picker = panel.querySelector("#viewer-report-template");
  const texts = panel.querySelector("#viewer-report-templates");
  const findings = panel.querySelector("#report-findings");
  const conclusion = panel.querySelector("#report-conclusion");
  if (!picker || !texts || !findings || !picker.value) return;
  const chosen = (JSON.parse(texts.textContent) || {})[picker.value];
  if (!chosen) return;
  const typed = findings.value.trim() || (conclusion && conclusion.value.trim());
  if (typed && !window.confirm("Replace the findings and the conclusion with the template?")) return;
  findings.value = chosen.findings;
  if (conclusion) conclusion.value = chosen.conclusion;
  said(panel, `Template "${picker.selectedOptions[0].textContent}" used.`, 0);
  findings.focus();
  findings.setSelectionRange(0, 0);
}

async function submit(panel, body, form, submitter) {
  // Read before the buttons are disabled: a disabled submitter is left out of the data.
  const data = new FormData(form, submitter);
  const buttons = [...form.querySelectorAll("button")];
  buttons.forEach((button) => (button.disabled = true));
  let answer;
  try {
    // getAttribute: the buttons named "action" shadow form.action.
    const response = await fetch(form.getAttribute("action"), {
      method: "POST",
      body: data,
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    answer = (response.headers.get("Content-Type") || "").includes("application/json") ? await response.json() : null;
    if (!answer) throw new Error(`HTTP ${response.status}`);
  } catch (error) {
    // A lost session or connection: the text stays in the form, to try again.
    buttons.forEach((button) => (button.disabled = false));
    said(panel, `Not saved (${error.message || error}). Your text is still here; try again, or reload the page.`, 0);
    return;
  }
  body.innerHTML = answer.panel;
  const errors = body.querySelector("#form-errors");
  if (errors) errors.focus();
}

export function start(viewer) {
  const panel = document.getElementById("viewer-report");
  if (!panel) return;
  const body = panel.querySelector("#viewer-report-body");
  // Delegated: the panel's body is drawn again after each save.
  panel.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-report-do]");
    if (!button) return;
    const findings = panel.querySelector("#report-findings");
    if (button.dataset.reportDo === "template") {
      templateUse(panel);
    } else if (button.dataset.reportDo === "measurements" && findings) {
      const lines = measurementLines();
      if (lines.length) insertLines(findings, lines);
      said(panel, lines.length ? `${lines.length} measurement${lines.length > 1 ? "s" : ""} inserted.` : "No measurements yet.", lines.length);
    } else if (button.dataset.reportDo === "key-images" && findings) {
      const lines = await keyImageLines(viewer);
      if (lines.length) insertLines(findings, lines);
      said(panel, lines.length ? `${lines.length} key image${lines.length > 1 ? "s" : ""} inserted.` : "No key images marked yet.", lines.length);
    }
  });
  panel.addEventListener("submit", (event) => {
    const form = event.target.closest("form.viewer-report-form");
    if (!form) return;
    event.preventDefault();
    submit(panel, body, form, event.submitter);
  });
}

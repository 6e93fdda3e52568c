// Send from the viewer (templates/imaging/viewer/_send_panel.html): the key images flagged with F
// (viewer.keyImages, annotations.js), the active viewport's series or the whole study, to a
// destination. One way in: the REST API the study page and other systems use (POST
// /api/v1/studies/{id}/sends, sending/api.py) with the staff session; the send runs in the
// worker, and its progress and per-instance results are read from GET /api/v1/sends/{id}.
import { call, imageRef } from "./annotations.js";

const POLL_MS = 1000;
const FINISHED = ["done", "partial", "failed"];

// This study's series, by UID: their ids for the API (the series strip's data, display.js).
function seriesIds() {
  const data = document.getElementById("viewer-series");
  const ids = new Map();
  if (data) JSON.parse(data.textContent).forEach((series) => ids.set(series.uid, series.id));
  return ids;
}

// The API's 4xx body (integrations/api/errors.py): its message and each field's reasons.
function reasons(data) {
  const fields = data?.error?.fields || {};
  const said = Object.entries(fields).map(([field, messages]) => `${field}: ${[].concat(messages).join(" ")}`);
  return said.length ? said.join("; ") : data?.error?.message || data?.detail || "";
}

export async function start(viewer) {
  const panel = document.getElementById("viewer-send");
  const form = panel?.querySelector('[data-part="form"]');
  if (!form) return;
  const part = (name) => panel.querySelector(`[data-part="${name}"]`);
  const status = part("status");
  const progress = part("progress");
  const failures = part("failures");
  const button = part("send");
  const series = seriesIds();

  // The flagged images of this study (a prior's shown beside it are not this study's to send).
  const keyUids = () => [...new Set((viewer.keyImages || [])
    .filter((key) => series.has(key.seriesUid))
    .map((key) => key.sopInstanceUid))];

  function say(text, state = "") {
    status.textContent = text;
    panel.dataset.state = state;
  }

  function keysShow() {
    const count = keyUids().length;
    part("key-count").textContent = `(${count})`;
  }
  document.addEventListener("vetpacs:keyimages", keysShow);
  form.addEventListener("focusin", keysShow);
  keysShow();

  // What the form asks for, as the API's request body; a string says why it cannot be sent.
  function request() {
    const body = { destination: Number(part("destination").value) };
    const what = form.elements.what.value;
    if (what === "keys") {
      const uids = keyUids();
      if (!uids.length) return "No key image flagged: press F on an image (or Key image) first.";
      body.instances = uids;
    } else if (what === "series") {
      const ref = imageRef(viewer.activeViewport()?.getCurrentImageId?.());
      if (!ref || !series.has(ref.seriesUid)) return "The active viewport shows no series of this study.";
      body.series = series.get(ref.seriesUid);
    }
    return body;
  }

  function progressShow(send) {
    const done = send.completed + send.warning + send.failed;
    progress.max = Math.max(1, send.total);
    progress.value = done;
    const where = `to ${send.destination}`;
    if (send.state === "done") {
      say(`Sent ${send.completed + send.warning} of ${send.total} ${where}.`, "done");
    } else if (send.state === "partial" || send.state === "failed") {
      say(`${send.state === "failed" ? "Failed" : "Sent with failures"} ${where}: ${send.failed} of ${send.total} not sent${send.error ? ` (${send.error})` : ""}.`, "failed");
    } else if (send.state === "retrying") {
      say(`Waiting to retry ${where} (attempt ${send.attempts}): ${done} of ${send.total} done.`, "running");
    } else {
      say(`${send.state === "queued" ? "Queued" : "Sending"} ${where}: ${done} of ${send.total} done.`, "running");
    }
    panel.dataset.sendState = send.state;
    const failed = (send.results || []).filter((result) => result.outcome === "failure");
    failures.replaceChildren(...failed.map((result) => {
      const item = document.createElement("li");
      item.textContent = `${result.sop_instance_uid}: ${result.comment || `status ${result.status}`}`;
      return item;
    }));
    failures.hidden = !failed.length;
  }

  async function follow(id) {
    const url = panel.dataset.sendUrl.replace(/\/1$/, `/${id}`);
    for (;;) {
      const answer = await call(url);
      if (!answer.ok) {
        say(`The send's progress could not be read (${answer.status}).`, "failed");
        return;
      }
      progressShow(answer.data);
      if (FINISHED.includes(answer.data.state)) return;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = request();
    if (typeof body === "string") {
      say(body, "failed");
      return;
    }
    button.disabled = true;
    progress.hidden = false;
    progress.value = 0;
    failures.hidden = true;
    say("Sending…", "running");
    try {
      const answer = await call(panel.dataset.url, "POST", body);
      if (answer.status !== 202) {
        say(`Not sent: ${reasons(answer.data) || `the server answered ${answer.status}`}`, "failed");
        return;
      }
      panel.dataset.send = String(answer.data.id);
      progressShow(answer.data);
      button.disabled = false; // another send may start while this one runs
      await follow(answer.data.id);
    } catch (error) {
      say(`Not sent: ${error.message || error}`, "failed");
    } finally {
      button.disabled = false;
    }
  });
}

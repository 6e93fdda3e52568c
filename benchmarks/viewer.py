"""Viewer speed (issue 16): VetPACS's viewer against the prebuilt OHIF viewer, same server, same data.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres CELERY_BROKER_URL=redis://127.0.0.1:6379/0 \
        .venv/bin/python benchmarks/viewer.py [--runs 2] [--dx-size 2000] [--ct-slices 300] [--ct-size 512]
        [--cine-seconds 4] [--ohif-cache var/ohif] [--keep]

VetPACS runs as in production (gunicorn, 2 gthread workers x 4 threads, and a Celery worker that
keeps each instance's /metadata document) on a throw-away PostgreSQL database. Its data, made
here and ingested through the normal receive + index path (benchmarks/archive.py's
``ingest_direct``): a DX of ``--dx-size``² 16-bit pixels, uncompressed (2000²: 8 MB), and a CT
series of ``--ct-slices`` ``--ct-size``² 16-bit slices (a phantom that changes from slice to
slice) whose Recommended Display Frame Rate is ``--fps``.

The baseline is OHIF's own build, @ohif/app ``--ohif-version`` from the npm registry: the
first run fetches it with ``npm pack`` into ``--ohif-cache`` (var/ohif/ by default, outside git)
and says so; later runs reuse it. Its dist is served untouched at the root of an origin by
benchmarks/viewer_proxy.py, which forwards every other path to VetPACS's gunicorn, so both
viewers are opened from that one origin, logged in with the same staff session, and OHIF's
data source is VetPACS's /dicomweb (app-config.js written here: ``ohif_config``).

Measured in headless Chromium (Playwright, service workers blocked), each run in a fresh browser
context whose static files were loaded once on a small warm-up study (a clinic's browser has
its viewer cached; the images are new), the two viewers taking turns, each page load fresh:

- first image: from navigation start to the first animation frame whose viewport canvas has
  non-black pixels (polled on every frame in the page), for the DX and for the CT's first slice;
- whole CT: from navigation start until the last slice has been drawn, stepping with the arrow
  key from the first slice to the last, each key press as soon as the previous slice was drawn
  (Cornerstone's IMAGE_RENDERED for that image index): what a reader scrolling through the
  series waits, whatever each viewer prefetches meanwhile;
- cine: frames drawn per second while playing the CT at its frame rate (VetPACS: its cine
  control, when the page has one; OHIF: its cine service, the one its Cine tool drives), once
  every slice has been seen: over the first loop (every frame drawn by Cornerstone), and then for
  ``--cine-seconds`` from the second loop on (VetPACS draws a loop it has drawn once from its
  frame cache, viewer/src/cine_cache.js; OHIF draws each frame through Cornerstone again). A frame
  counts when it is drawn on the viewport's canvas: Cornerstone's IMAGE_RENDERED, or VetPACS's
  vetpacs-cine-frame for a frame drawn from its cache.

It prints each figure (median and range of the runs), the ratios and the issue's targets as met
or not met (first image at most 0.5x OHIF's, whole CT at most OHIF's, cine at the frame rate),
and what OHIF asked of VetPACS's DICOMweb that failed (HTTP status >= 400): the conformance check.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import harness  # noqa: E402
from benchmarks.archive import CLIENT_AE, ingest_direct, progress  # noqa: E402
from benchmarks.harness import HOST, PYTHON, free_port, med  # noqa: E402

ROOT = harness.ROOT
OHIF_VERSION = "3.13.2"
PASSWORD = "bench-" + uuid.uuid4().hex[:12]
USERNAME = "benchreader"
WIDE = {"width": 1280, "height": 900}
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip

# Where each viewer draws its images (the canvases polled) and which elements' Cornerstone
# events count (OHIF's study browser renders thumbnails through Cornerstone too).
VIEWERS = {
    "VetPACS": {"canvas": "#viewer-grid canvas, #viewer canvas", "element": ".viewer, #viewer"},
    "OHIF": {"canvas": ".cornerstone-viewport-element canvas", "element": ".cornerstone-viewport-element"},
}

# Runs in every page before its own scripts (Playwright's init script, not subject to the page's
# Content-Security-Policy). performance.now() counts from navigation start.
PAGE_PROBE = """(sel) => {
  const bench = (window.__bench = { first: null, renders: [], waiters: [], index: null });
  performance.setResourceTimingBufferSize(100000);  // 250 by default: a CT has more frames
  const sample = document.createElement('canvas');
  sample.width = sample.height = 32;
  const ctx = sample.getContext('2d', { willReadFrequently: true });
  // A canvas counts as drawn when over 3% of a 32x32 sample of it is not black.
  function drawn() {
    for (const canvas of document.querySelectorAll(sel.canvas)) {
      if (!canvas.width || !canvas.height) continue;
      ctx.clearRect(0, 0, 32, 32);
      ctx.drawImage(canvas, 0, 0, 32, 32);
      const d = ctx.getImageData(0, 0, 32, 32).data;
      let lit = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 30) lit += 1;
      if (lit > 30) return true;
    }
    return false;
  }
  function poll() {
    if (bench.first !== null) return;
    if (drawn()) bench.first = performance.now();
    else requestAnimationFrame(poll);
  }
  requestAnimationFrame(poll);
  bench.others = {};
  const ours = (event) => {
    const mine = event.target && event.target.closest && event.target.closest(sel.element);
    if (!mine) {
      const what = `${event.type} ${event.target && (event.target.className || event.target.nodeName)}`;
      bench.others[what] = (bench.others[what] || 0) + 1;
    }
    return mine;
  };
  // Capture listeners see the events Cornerstone dispatches (not bubbling) on its elements.
  document.addEventListener('CORNERSTONE_STACK_NEW_IMAGE', (event) => {
    if (ours(event)) bench.index = event.detail.imageIdIndex;
  }, true);
  document.addEventListener('CORNERSTONE_IMAGE_RENDERED', (event) => {
    if (!ours(event)) return;
    const t = performance.now();
    if (bench.firstRender === undefined) bench.firstRender = t;
    bench.renders.push([t, bench.index]);
    bench.waiters = bench.waiters.filter(([i, resolve]) => (bench.index === i ? (resolve(t), false) : true));
  }, true);
  // VetPACS's cine draws a loop it has drawn once from its frame cache (viewer/src/cine_cache.js),
  // not through Cornerstone: each frame it draws on the canvas says so (vetpacs-cine-frame).
  document.addEventListener('vetpacs-cine-frame', (event) => {
    if (!ours(event)) return;
    bench.index = event.detail.index;
    bench.renders.push([performance.now(), bench.index]);
  }, true);
  // The time image ``i`` was drawn (now, or when it is); null after ``ms`` without it.
  bench.waitIndex = (i, ms) => new Promise((resolve) => {
    const last = bench.renders[bench.renders.length - 1];
    if (last && last[1] === i) return resolve(last[0]);
    bench.waiters.push([i, resolve]);
    setTimeout(() => resolve(null), ms);
  });
}"""


FIRST_IMAGE = """(timeout) => new Promise((resolve) => {
  const until = Date.now() + timeout;
  const check = () => {
    if (window.__bench && window.__bench.first !== null) resolve(window.__bench.first);
    else if (Date.now() > until) resolve(null);
    else setTimeout(check, 50);
  };
  check();
})"""


# --- OHIF: fetched from the registry, configured for VetPACS -------------------------------------


def ohif_dist(cache, version):
    """OHIF's prebuilt dist, fetched once with ``npm pack @ohif/app@version`` into ``cache``."""
    folder = Path(cache) / version
    dist = folder / "package" / "dist"
    if (dist / "index.html").is_file():
        return dist
    folder.mkdir(parents=True, exist_ok=True)
    print(
        f"fetching OHIF: npm pack @ohif/app@{version} into {folder} (once; later runs reuse it)", flush=True
    )
    done = subprocess.run(
        ["npm", "pack", f"@ohif/app@{version}", "--silent"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode:
        raise SystemExit(f"npm pack @ohif/app@{version} failed: {done.stderr[-2000:]}")
    tarball = folder / done.stdout.strip().splitlines()[-1]
    with tarfile.open(tarball) as tar:
        tar.extractall(folder, filter="data")
    tarball.unlink()
    return dist


def ohif_config(origin):
    """OHIF's app-config.js: one DICOMweb data source, VetPACS's /dicomweb on the same origin.

    What VetPACS's DICOMweb needed to be given: WADO-RS frames for images and thumbnails
    (``wadors``; VetPACS answers ``transfer-syntax=*`` with the stored syntax), no static-WADO
    shortcuts (``staticWado`` false: VetPACS answers QIDO's query keys itself), multipart
    responses everywhere (``singlepart`` false), exact matching (``supportsFuzzyMatching`` false),
    the study's series metadata read lazily, and OHIF's own study prefetcher on, as its docs
    advise for a stack (its best showing)."""
    root = f"{origin}/dicomweb"
    config = {
        "routerBasename": "/",
        "extensions": [],  # the build's own extensions and modes are loaded anyway
        "modes": [],
        "customizationService": {},
        "showStudyList": True,
        "maxNumberOfWebWorkers": 3,
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": False,
        "showLoadingIndicator": True,
        "strictZSpacingForVolumeViewport": True,
        "investigationalUseDialog": {"option": "never"},
        "maxNumRequests": {"interaction": 100, "thumbnail": 5, "prefetch": 25},
        "studyPrefetcher": {
            "enabled": True,
            "displaySetsCount": 2,
            "maxNumPrefetchRequests": 10,
            "order": "closest",
        },
        "defaultDataSourceName": "vetpacs",
        "dataSources": [
            {
                "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
                "sourceName": "vetpacs",
                "configuration": {
                    "friendlyName": "VetPACS DICOMweb",
                    "name": "vetpacs",
                    "qidoRoot": root,
                    "wadoRoot": root,
                    "wadoUriRoot": root,
                    "qidoSupportsIncludeField": True,
                    "imageRendering": "wadors",
                    "thumbnailRendering": "wadors",
                    "enableStudyLazyLoad": True,
                    "supportsFuzzyMatching": False,
                    "supportsWildcard": True,
                    "staticWado": False,
                    "singlepart": False,
                    "omitQuotationForMultipartRequest": True,
                    "bulkDataURI": {"enabled": True},
                },
            }
        ],
    }
    return (
        "/* Written by benchmarks/viewer.py: OHIF reading VetPACS's DICOMweb (same origin). */\n"
        f"window.config = {json.dumps(config, indent=2)};\n"
    )


# --- the data --------------------------------------------------------------------------------------


def datasets_write(folder, dx_size, ct_slices, ct_size, fps):
    """The DX, the CT series and a small warm-up CT as Part 10 files under ``folder``; their
    Study Instance UIDs."""
    import numpy as np
    from pydicom.uid import generate_uid

    from benchmarks.archive_corpus import _phantom, _template

    def study(ds, name, pid, description):
        ds.PatientName, ds.PatientID, ds.PatientSex, ds.PatientBirthDate = name, pid, "M", "20190301"
        ds.PatientSpeciesDescription = "Dog"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = time.strftime("%Y%m%d")
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = "101500"
        ds.AccessionNumber, ds.StudyID, ds.SeriesNumber = pid[-8:], "1", 1
        ds.StudyDescription = ds.SeriesDescription = description
        ds.ReferringPhysicianName = "Bench^Vet"
        return ds.StudyInstanceUID

    uids = {}
    dx = _template("DX")
    uids["dx"] = study(dx, "Bench^Dx", "BENCHDX1", "Thorax DX")
    y, x = np.mgrid[0:dx_size, 0:dx_size] / dx_size
    # A thorax's shape: a bright body, darker lungs, ribs across them, noise (not one flat value).
    body = np.hypot((x - 0.5) / 0.9, y - 0.5) < 0.45
    lungs = (np.hypot((x - 0.37) / 0.6, (y - 0.5) / 1.3) < 0.18) | (
        np.hypot((x - 0.63) / 0.6, (y - 0.5) / 1.3) < 0.18
    )
    ribs = (np.sin(y * 60) > 0.6) & body
    noise = np.random.default_rng(1).integers(0, 60, (dx_size, dx_size))
    image = 300 + body * 2200 - lungs * 1500 + ribs * 700 + noise
    dx.Rows = dx.Columns = dx_size
    dx.PixelData = np.clip(image, 0, 4095).astype(np.uint16).tobytes()
    dx.SOPInstanceUID = dx.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    dx.InstanceNumber = 1
    (folder / "dx").mkdir(parents=True)
    dx.save_as(folder / "dx" / "1.dcm", enforce_file_format=True)

    for key, count, size in (("ct", ct_slices, ct_size), ("warm", 3, 64)):
        ct = _template("BIG")
        uids[key] = study(ct, f"Bench^{key.title()}", f"BENCH{key.upper()}1", f"{key.upper()} thorax")
        ct.Rows = ct.Columns = size
        ct.RecommendedDisplayFrameRate = ct.CineRate = fps
        ct.WindowCenter, ct.WindowWidth = 40, 400  # soft tissue (the phantom's body is ~40 HU)
        (folder / key).mkdir(parents=True)
        for number in range(1, count + 1):
            ct.SOPInstanceUID = ct.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            ct.InstanceNumber = number
            ct.ImagePositionPatient = [0, 0, number * float(ct.SliceThickness)]
            ct.SliceLocation = number * float(ct.SliceThickness)
            pixels = np.frombuffer(_phantom(number, count), np.uint16).reshape(512, 512)
            if size != 512:
                pixels = pixels[:: max(1, 512 // size), :: max(1, 512 // size)][:size, :size].copy()
            ct.PixelData = pixels.tobytes()
            ct.save_as(folder / key / f"{number:04d}.dcm", enforce_file_format=True)
    return uids


def vetpacs_prepare():
    """The ingest's calling AE as a known node, and a veterinarian to log in as."""
    from django.contrib.auth.models import Group, User

    from imaging.models import Modality

    Modality.objects.update_or_create(
        ae_title=CLIENT_AE,
        defaults=dict(host=HOST, modality_type="OT", station_name="BENCH", may_store=True, may_query=True),
    )  # fmt: skip
    user = User.objects.create_user(username=USERNAME, password=PASSWORD, first_name="Bench")
    user.groups.add(Group.objects.get(name="veterinarian"))


def metadata_pending():
    from imaging.models import Instance

    return Instance.objects.filter(metadata=None).count()


def study_pks(uids):
    from imaging.models import Study

    return {key: Study.objects.get(study_instance_uid=uid).pk for key, uid in uids.items()}


# --- in the browser ------------------------------------------------------------------------------


def log_in(context, origin):
    page = context.new_page()
    answer = page.goto(f"{origin}/login/")
    if not page.locator("#id_username").count():
        raise RuntimeError(f"no login form at {origin}/login/: HTTP {answer.status} {page.content()[:1500]}")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{origin}/")
    page.close()


def viewer_url(origin, viewer, pk, uid):
    return (
        f"{origin}/studies/{pk}/view" if viewer == "VetPACS" else f"{origin}/viewer?StudyInstanceUIDs={uid}"
    )


def page_open(context, viewer, url, failures, timeout):
    """A new page at ``url`` with the probe; waits for the first image; its time (ms)."""
    page = context.new_page()
    page.set_default_timeout(timeout)
    page.add_init_script(f"({PAGE_PROBE})({json.dumps(VIEWERS[viewer])})")
    page.on(
        "response",
        lambda r: (
            r.status >= 400
            and "/dicomweb/" in r.url
            and failures.add(f"{r.status} {r.request.method} {r.url}")
        ),
    )
    problems = []
    page.on("console", lambda m: m.type == "error" and problems.append(m.text[:300]))
    page.on("pageerror", lambda e: problems.append(str(e)[:300]))
    page.on("requestfailed", lambda r: problems.append(f"failed {r.url[:200]} {r.failure}"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status} {r.url[:200]}"))
    page.goto(url, wait_until="commit")
    # A promise in the page, not wait_for_function: VetPACS's policy forbids evaluating strings.
    first = page.evaluate(FIRST_IMAGE, timeout)
    if first is None:
        page.screenshot(path=str(Path(tempfile.gettempdir()) / f"viewer-bench-{viewer.lower()}-failed.png"))
        raise RuntimeError(
            f"{viewer}: no image drawn within {timeout / 1000:.0f} s at {url}: {problems[:12]}"
        )
    return page, first


def network(page):
    """DICOMweb requests the page made, by kind, and their bytes."""
    return page.evaluate(
        """() => {
      const out = {};
      for (const e of performance.getEntriesByType('resource')) {
        if (!e.name.includes('/dicomweb/')) continue;
        const kind = e.name.includes('/frames/') ? 'frames' : e.name.includes('/metadata') ? 'metadata'
          : e.name.includes('/thumbnail') || e.name.includes('/rendered') ? 'rendered' : 'qido/other';
        // What was asked, UIDs and values left out: the conformance report's list.
        const url = new URL(e.name);
        const shape = url.pathname.replace(/\/\d+(\.\d+)+/g, '/{uid}').replace(/frames\/\d+/, 'frames/{n}')
          + (url.search ? '?' + [...url.searchParams.keys()].join('&') : '');
        out.asked = out.asked || [];
        if (!out.asked.includes(shape)) out.asked.push(shape);
        out[kind] = out[kind] || { n: 0, bytes: 0 };
        out[kind].n += 1;
        out[kind].bytes += e.transferSize || e.encodedBodySize || 0;
      }
      return out;
    }"""
    )


def waterfall(page, viewer, what, first):
    """--profile: the page's requests up to its first image (start and end, ms from navigation
    start), to see where the time before the first image goes."""
    entries = page.evaluate(
        """(first) => performance.getEntriesByType('resource').filter((e) => e.startTime <= first)
          .map((e) => [e.startTime, e.responseEnd, e.transferSize || 0, e.name.split('?')[0].slice(-60)])""",
        first,
    )
    nav = page.evaluate(
        "() => { const n = performance.getEntriesByType('navigation')[0]; return [n.responseEnd, n.domContentLoadedEventEnd]; }"
    )
    print(
        f"    {viewer} {what}: document {nav[0]:.0f} ms, DOMContentLoaded {nav[1]:.0f} ms, first IMAGE_RENDERED"
        f" {harness.fmt(page.evaluate('() => window.__bench.firstRender'), '.0f')} ms, first image seen drawn"
        f" {first:.0f} ms"
    )
    for start, end, size, name in entries:
        print(f"      {start:7.0f} {end:7.0f} {size / 1e3:9.1f} kB  {name}")


def focus(page, viewer):
    if viewer == "VetPACS":
        page.focus("#viewer")
    else:  # OHIF's hotkeys listen on the document; the pointer over the viewport makes it the one
        box = page.locator(".cornerstone-viewport-element").first.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def whole_ct(page, viewer, count, timeout):
    """Arrow down from the first slice to the last, each press once the slice before was drawn;
    the time (ms from navigation start) the last slice was drawn."""
    focus(page, viewer)
    last = None
    for index in range(1, count):
        page.keyboard.press("ArrowDown")
        last = page.evaluate("([i, ms]) => window.__bench.waitIndex(i, ms)", [index, timeout])
        if last is None:
            seen = page.evaluate(
                "() => [window.__bench.index, window.__bench.renders.slice(-5), window.__bench.others]"
            )
            raise RuntimeError(
                f"{viewer}: slice {index + 1} not drawn within {timeout / 1000:.0f} s; seen {seen}"
            )
    return last


def cine(page, viewer, fps, seconds, count, loop_timeout):
    """Frames drawn per second while the viewer plays the series of ``count`` frames at
    ``fps``: over its first loop (at most ``loop_timeout`` s), and then over ``seconds``; (None,
    None) and why not when it cannot be driven."""
    if viewer == "OHIF":
        started = page.evaluate(
            """(fps) => {
          const { cineService, viewportGridService } = window.services || {};
          if (!cineService || !viewportGridService) return false;
          // What its Cine button and play control do: the viewport's cine player then plays it.
          cineService.setIsCineEnabled(true);
          cineService.setCine({ id: viewportGridService.getActiveViewportId(), isPlaying: true, frameRate: fps });
          return true;
        }""",
            fps,
        )
        if not started:
            return (None, None), "OHIF's cine service was not found (window.services.cineService)"
    else:
        play = page.locator(
            "#viewer-toolbar [data-cine], button[aria-label*='Play' i], button[title*='Play' i]"
        )
        if not play.count():
            why = "the viewer has no cine control on this branch (viewer/src/cine.js is the stub)"
            return (None, None), why
        play.first.click()
    # The first loop: every frame once (or as many as the timeout allows).
    first = page.evaluate(
        """async ([count, ms]) => {
      const from = window.__bench.renders.length;
      const until = performance.now() + ms;
      while (window.__bench.renders.length - from < count && performance.now() < until) {
        await new Promise((r) => setTimeout(r, 100));
      }
      return window.__bench.renders.slice(from).map((r) => r[0]);
    }""",
        [count, int(loop_timeout * 1000)],
    )
    rendered = page.evaluate(
        """async (ms) => {
      const from = window.__bench.renders.length;
      await new Promise((r) => setTimeout(r, ms));
      return window.__bench.renders.slice(from).map((r) => r[0]);
    }""",
        int(seconds * 1000),
    )
    if viewer == "OHIF":
        page.evaluate(
            """() => {
          const { cineService, viewportGridService } = window.services;
          cineService.setCine({ id: viewportGridService.getActiveViewportId(), isPlaying: false });
          cineService.setIsCineEnabled(false);
        }"""
        )

    def rate(times):
        return (len(times) - 1) / ((times[-1] - times[0]) / 1000) if len(times) >= 2 else 0.0

    return (rate(first), rate(rendered)), None


def measure(context, origin, viewer, pks, uids, args, failures, out):
    """One viewer's turn: the DX, then the CT (first slice, whole series, cine)."""
    timeout = args.timeout * 1000
    page, first = page_open(
        context, viewer, viewer_url(origin, viewer, pks["dx"], uids["dx"]), failures, timeout
    )
    out.setdefault("dx_first", []).append(first)
    if args.profile:
        waterfall(page, viewer, "DX", first)
    out.setdefault("dx_net", []).append(network(page))
    if args.shots:
        page.screenshot(path=str(Path(args.shots) / f"viewer-bench-{viewer.lower()}-dx.png"))
    page.close()
    page, first = page_open(
        context, viewer, viewer_url(origin, viewer, pks["ct"], uids["ct"]), failures, timeout
    )
    out.setdefault("ct_first", []).append(first)
    if args.profile:
        waterfall(page, viewer, "CT", first)
    out.setdefault("ct_all", []).append(whole_ct(page, viewer, args.ct_slices, timeout))
    out.setdefault("ct_net", []).append(network(page))
    (first_loop, fps), why = cine(page, viewer, args.fps, args.cine_seconds, args.ct_slices, args.timeout)
    if fps is not None:
        out.setdefault("cine_first", []).append(first_loop)
        out.setdefault("cine", []).append(fps)
    else:
        out["cine_why"] = why
    if args.shots:
        page.screenshot(path=str(Path(args.shots) / f"viewer-bench-{viewer.lower()}-ct.png"))
    page.close()


def browse(origin, pks, uids, args, workdir):
    """The runs: a fresh browser profile each (on disk, so that its HTTP cache keeps OHIF's 17 MB
    bundle as a clinic's browser would: an in-memory context's cache does not), warmed on the
    small study, the viewers taking turns (which goes first alternates). Returns the figures by
    viewer and the failed requests."""
    from playwright.sync_api import sync_playwright

    results, failures = {"VetPACS": {}, "OHIF": {}}, {"VetPACS": set(), "OHIF": set()}
    with sync_playwright() as playwright:
        for run in range(args.runs):
            context = playwright.chromium.launch_persistent_context(
                str(workdir / f"profile-{run}"), executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                viewport=WIDE, service_workers="block",
            )  # fmt: skip
            try:
                log_in(context, origin)
                order = [v for v in ("VetPACS", "OHIF") if v in args.viewers.split(",")]
                order = order if run % 2 == 0 else order[::-1]
                for viewer in order:  # the viewers' own files into the browser's cache
                    url = viewer_url(origin, viewer, pks["warm"], uids["warm"])
                    page, _ = page_open(context, viewer, url, failures[viewer], args.timeout * 1000)
                    page.close()
                for viewer in order:
                    measure(context, origin, viewer, pks, uids, args, failures[viewer], results[viewer])
                    r = results[viewer]
                    print(
                        f"  run {run + 1}, {viewer}: DX first image {r['dx_first'][-1]:.0f} ms; CT first slice"
                        f" {r['ct_first'][-1]:.0f} ms, whole CT {r['ct_all'][-1]:.0f} ms, cine"
                        f" {harness.fmt(r['cine_first'][-1] if r.get('cine_first') else None, '.1f')} fps first"
                        f" loop, {harness.fmt(r['cine'][-1] if r.get('cine') else None, '.1f')} fps after",
                        flush=True,
                    )
            finally:
                context.close()
    return results, failures


# --- the report --------------------------------------------------------------------------------------


def report(results, failures, args):
    ours, theirs = results["VetPACS"], results["OHIF"]
    rows = []
    for key, what in (
        ("dx_first", f"first image, DX {args.dx_size}x{args.dx_size} 16-bit"),
        ("ct_first", f"first image, CT slice 1 of {args.ct_slices}"),
        ("ct_all", f"whole CT drawn, slice by slice ({args.ct_slices})"),
    ):
        ratio = (
            med(ours.get(key, [])) / med(theirs.get(key, [])) if ours.get(key) and theirs.get(key) else None
        )
        rows.append([what, harness.span(ours.get(key, []), ".0f"), harness.span(theirs.get(key, []), ".0f"),
                     harness.fmt(ratio, ".2f")])  # fmt: skip
    rows.append(
        [f"cine fps, CT at {args.fps:g} fps, 1st loop", harness.span(ours.get("cine_first", []), ".1f"),
         harness.span(theirs.get("cine_first", []), ".1f"), ""]
    )  # fmt: skip
    rows.append(
        [f"cine fps, CT at {args.fps:g} fps, then", harness.span(ours.get("cine", []), ".1f"),
         harness.span(theirs.get("cine", []), ".1f"), ""]
    )  # fmt: skip
    print(f"\nViewer speed, {args.runs} runs, ms from navigation start (median [min-max]):")
    print(harness.table(["", "VetPACS", "OHIF", "ratio"], rows))
    for viewer in ("VetPACS", "OHIF"):
        for key in ("dx_net", "ct_net"):
            if results[viewer].get(key):
                net = results[viewer][key][-1]
                said = ", ".join(
                    f"{k} {v['n']} ({v['bytes'] / 1e6:.1f} MB)"
                    for k, v in sorted(net.items())
                    if k != "asked"
                )
                print(f"  {viewer} DICOMweb requests, {key[:2].upper()} (last run): {said}")
    print()

    def ratio(key):
        if ours.get(key) and theirs.get(key):
            return med(ours[key]) / med(theirs[key])
        return None

    for key, what in (("dx_first", "first image, DX"), ("ct_first", "first image, CT")):
        r = ratio(key)
        print(
            harness.target(
                what, f"{harness.fmt(r, '.2f')}x OHIF's", "<= 0.5x OHIF's", r is not None and r <= 0.5
            )
        )
    r = ratio("ct_all")
    print(
        harness.target(
            "whole CT drawn", f"{harness.fmt(r, '.2f')}x OHIF's", "<= OHIF's", r is not None and r <= 1.0
        )
    )
    for viewer in ("VetPACS", "OHIF"):
        fps = results[viewer].get("cine")
        if fps:
            met = med(fps) >= 0.95 * args.fps
            print(
                harness.target(
                    f"cine from the 2nd loop, {viewer}",
                    f"{med(fps):.1f} fps",
                    f"{args.fps:g} fps (within 5%)",
                    met,
                )
            )
        else:
            print(f"  cine, {viewer}: not measured: {results[viewer].get('cine_why', 'no run')}")
    asked = sorted(
        {a for key in ("dx_net", "ct_net") for net in theirs.get(key, []) for a in net.get("asked", [])}
    )
    print("\nConformance: what OHIF asked of VetPACS's DICOMweb:")
    for shape in asked:
        print(f"  {shape}")
    print("What failed (HTTP >= 400):")
    for viewer in ("OHIF", "VetPACS"):
        print(f"  {viewer}: {'; '.join(sorted(failures[viewer])[:10]) if failures[viewer] else 'nothing'}")


# --- main -----------------------------------------------------------------------------------------


def main():
    began = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--dx-size", type=int, default=2000)
    parser.add_argument("--ct-slices", type=int, default=300)
    parser.add_argument("--ct-size", type=int, default=512)
    parser.add_argument("--fps", type=float, default=30.0, help="the CT's Recommended Display Frame Rate")
    parser.add_argument("--cine-seconds", type=float, default=4.0)
    parser.add_argument("--ohif-version", default=OHIF_VERSION)
    parser.add_argument("--ohif-cache", type=Path, default=ROOT / "var" / "ohif")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds for each page's first image")
    parser.add_argument("--shots", type=Path, help="save a screenshot of each viewer here")
    parser.add_argument("--viewers", default="VetPACS,OHIF", help="which to measure (both: the ratios)")
    parser.add_argument(
        "--profile", action="store_true", help="print each page's requests before its first image"
    )
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    # A SIGTERM (a timeout, Ctrl-C's cousin) still reaches the finally: nothing left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.shots:
        args.shots.mkdir(parents=True, exist_ok=True)

    dist = ohif_dist(args.ohif_cache, args.ohif_version)
    workdir = Path(tempfile.mkdtemp(prefix="vetpacs-bench-viewer-"))
    db, results, failures = None, None, None
    try:
        db = harness.Database(harness.postgres_url(), "viewer")
        env = {
            **os.environ, "DATABASE_URL": db.url, "DEBUG": "false", "SECRET_KEY": uuid.uuid4().hex * 2,
            "LOG_LEVEL": "WARNING", "VAR_DIR": str(workdir / "var"), "STORAGE_ROOT": str(workdir / "storage"),
            "STORAGE_BACKEND": "file", "ALLOWED_HOSTS": HOST, "SECURE_SSL_REDIRECT": "false",
            "SECURE_COOKIES": "false", "SECURE_HSTS_SECONDS": "0",
            "DJANGO_SETTINGS_MODULE": "vetclinic.settings", "CELERY_QUEUE": f"bench-{uuid.uuid4().hex[:10]}",
            "DATABASE_CONN_MAX_AGE": "60",
        }  # fmt: skip
        os.environ.update(env)
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connections

        call_command("migrate", verbosity=0, interactive=False)
        # DEBUG off, as in production: WhiteNoise serves the hashed, compressed static files.
        call_command("collectstatic", verbosity=0, interactive=False)
        vetpacs_prepare()
        t0 = time.perf_counter()
        uids = datasets_write(workdir / "data", args.dx_size, args.ct_slices, args.ct_size, args.fps)
        parts = [workdir / "data" / key for key in ("dx", "ct", "warm")]
        expected = 1 + args.ct_slices + 3
        connections.close_all()
        worker = harness.start(
            [PYTHON, "-m", "celery", "-A", "vetclinic", "worker", "--loglevel", "WARNING",
             "--concurrency", "2", "-Q", env["CELERY_QUEUE"], "-n", f"{env['CELERY_QUEUE']}@%h"],
            env=env, log=workdir / "worker.log",
        )  # fmt: skip
        stored = ingest_direct(parts, expected)
        progress(metadata_pending, lambda n: n == 0, what="metadata documents", stall=60)
        if worker.poll() is not None:
            raise RuntimeError(f"the Celery worker exited: {harness.tail(workdir / 'worker.log')}")
        pks = study_pks(uids)
        connections.close_all()
        print(
            f"data: DX {args.dx_size}x{args.dx_size}, CT {args.ct_slices} x {args.ct_size}x{args.ct_size}, ingested in"
            f" {stored:.1f} s, metadata kept at {time.perf_counter() - t0:.0f} s; {os.cpu_count()} CPUs, load"
            f" average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        web = harness.Gunicorn("vetclinic.wsgi:application", workdir, env, workers=2, threads=4).__enter__()
        port = free_port()
        origin = f"http://{HOST}:{port}"
        config = workdir / "app-config.js"
        config.write_text(ohif_config(origin))
        harness.launch(
            [PYTHON, str(ROOT / "benchmarks" / "viewer_proxy.py"), "--port", str(port), "--upstream-port",
             str(web.port), "--dist", str(dist), "--config", str(config)],
            env=env, log=workdir / "proxy.log", ready=lambda: harness.port_open(port), what="the viewer proxy",
        )  # fmt: skip
        print(
            f"VetPACS ({db}) on {web.port}; both viewers at {origin}; OHIF {args.ohif_version} from {dist}",
            flush=True,
        )
        results, failures = browse(origin, pks, uids, args, workdir)
    finally:
        if results:
            report(results, failures, args)
        harness.stop_all()
        harness.cleanup([db], workdir, keep=args.keep)
        print(f"total {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()

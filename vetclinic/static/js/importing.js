// Importing images (issue 17): drop files, folders, ZIPs or a CD onto a .import-drop card, or
// choose them; one XHR posts them all (its upload progress drives the bar), then the result
// page opens. Folders are walked with DataTransferItem.webkitGetAsEntry; each file's path in
// its folder goes along ("paths"), since a DICOMDIR names its files by those paths. The photo
// page's form posts through the same upload(), with the same bar.
(function () {
  "use strict";

  function entryFiles(entry, path, out) {
    if (entry.isFile) {
      return new Promise(function (resolve) {
        entry.file(function (file) { out.push({ file: file, path: path + file.name }); resolve(); },
          function () { resolve(); });
      });
    }
    if (!entry.isDirectory) return Promise.resolve();
    var reader = entry.createReader();
    return new Promise(function (resolve) {
      var all = [];
      (function more() { // readEntries answers in pieces (100 at a time in Chromium) until empty
        reader.readEntries(function (entries) {
          if (!entries.length) {
            Promise.all(all.map(function (e) { return entryFiles(e, path + entry.name + "/", out); })).then(resolve);
            return;
          }
          all = all.concat(Array.prototype.slice.call(entries));
          more();
        }, function () { resolve(); });
      })();
    });
  }

  function droppedFiles(dataTransfer) {
    var out = [];
    var items = dataTransfer.items ? Array.prototype.slice.call(dataTransfer.items) : [];
    var entries = items.map(function (item) { return item.webkitGetAsEntry && item.webkitGetAsEntry(); })
      .filter(Boolean);
    if (!entries.length) {
      Array.prototype.forEach.call(dataTransfer.files, function (f) { out.push({ file: f, path: f.name }); });
      return Promise.resolve(out);
    }
    return Promise.all(entries.map(function (e) { return entryFiles(e, "", out); }))
      .then(function () { return out; });
  }

  // One upload whose progress `box` shows (its .import-progress bar and .import-message): the
  // DICOM drop card and the photo form both send through it. done(xhr) gets the answer.
  function upload(box, url, count, done) {
    var bar = box.querySelector(".import-progress");
    var message = box.querySelector(".import-message");
    var xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.setRequestHeader("X-CSRFToken", box.querySelector("[name=csrfmiddlewaretoken]").value);
    bar.hidden = false;
    bar.value = 0;
    box.classList.add("busy");
    message.textContent = "Sending " + count + " file" + (count === 1 ? "" : "s") + "…";
    xhr.upload.addEventListener("progress", function (event) {
      if (!event.lengthComputable) return;
      bar.value = Math.round((100 * event.loaded) / event.total);
      message.textContent = "Sending: " + bar.value + " %";
    });
    xhr.upload.addEventListener("load", function () {
      bar.value = 100;
      message.textContent = "Checking and storing…";
    });
    xhr.addEventListener("load", function () {
      box.classList.remove("busy");
      done(xhr, message);
    });
    xhr.addEventListener("error", function () {
      box.classList.remove("busy");
      message.textContent = "The upload failed: the connection was lost. Nothing more was stored.";
    });
    return xhr;
  }

  function send(card, files) {
    if (!files.length) return;
    var form = new FormData();
    files.forEach(function (f) { form.append("files", f.file, f.file.name); form.append("paths", f.path); });
    if (card.dataset.patient) form.append("patient", card.dataset.patient);
    if (card.dataset.order) form.append("order", card.dataset.order);
    var xhr = upload(card, card.dataset.importUrl, files.length, function (xhr, message) {
      var answer = {};
      try { answer = JSON.parse(xhr.responseText); } catch (e) { /* an HTML error page */ }
      if (xhr.status === 201) {
        message.textContent = answer.stored + " stored, " + answer.refused + " refused. Opening the result…";
        window.location.assign(answer.url);
      } else {
        message.textContent = answer.error || ("The upload failed (" + xhr.status + ").");
      }
    });
    xhr.setRequestHeader("Accept", "application/json");
    xhr.send(form);
  }

  // A form marked data-upload-results (the photo page) posts to itself through upload(); the
  // page it answers with is the same page, whose results part (the stored files and the
  // per-file reasons for the others) replaces this one's: no second rendering of them here.
  function startForm(form) {
    form.addEventListener("submit", function (event) {
      var files = form.querySelector("input[type=file]");
      if (!files || !files.files.length) return; // the page itself says what is missing
      event.preventDefault();
      var button = form.querySelector("button[type=submit]");
      button.disabled = true;
      var xhr = upload(form, form.action || window.location.href, files.files.length,
        function (xhr, message) {
          button.disabled = false;
          var answer = new DOMParser().parseFromString(xhr.responseText, "text/html");
          var selector = form.dataset.uploadResults;
          var results = answer.querySelector(selector);
          if (!results) {
            message.textContent = "The upload failed (" + xhr.status + ").";
            return;
          }
          document.querySelector(selector).replaceWith(document.adoptNode(results));
          var stored = results.querySelectorAll(".photo-stored li").length;
          var failed = results.querySelectorAll(".photo-failed li").length;
          message.textContent = xhr.status === 200
            ? "Done: " + stored + " stored" + (failed ? ", " + failed + " not stored (see why above)" : "") + "."
            : "Nothing was stored: see why above.";
          files.value = "";
        });
      xhr.addEventListener("error", function () { button.disabled = false; });
      xhr.send(new FormData(form));
    });
  }

  function start(card) {
    card.addEventListener("dragover", function (event) {
      event.preventDefault();
      card.classList.add("dragging");
    });
    card.addEventListener("dragleave", function () { card.classList.remove("dragging"); });
    card.addEventListener("drop", function (event) {
      event.preventDefault();
      card.classList.remove("dragging");
      droppedFiles(event.dataTransfer).then(function (files) { send(card, files); });
    });
    card.querySelectorAll("[data-import-input]").forEach(function (input) {
      input.addEventListener("change", function () {
        var files = Array.prototype.map.call(input.files, function (f) {
          return { file: f, path: f.webkitRelativePath || f.name };
        });
        send(card, files);
        input.value = "";
      });
    });
  }

  document.querySelectorAll(".import-drop").forEach(start);
  document.querySelectorAll("form[data-upload-results]").forEach(startForm);
})();

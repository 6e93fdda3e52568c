// Importing images (issue 17): drop files, folders, ZIPs or a CD onto a .import-drop card, or
// choose them; one XHR posts them all (its upload progress drives the bar), then the result
// page opens. Folders are walked with DataTransferItem.webkitGetAsEntry; each file's path in
// its folder goes along ("paths"), since a DICOMDIR names its files by those paths.
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

  function send(card, files) {
    if (!files.length) return;
    var bar = card.querySelector(".import-progress");
    var message = card.querySelector(".import-message");
    var form = new FormData();
    files.forEach(function (f) { form.append("files", f.file, f.file.name); form.append("paths", f.path); });
    if (card.dataset.patient) form.append("patient", card.dataset.patient);
    if (card.dataset.order) form.append("order", card.dataset.order);
    var xhr = new XMLHttpRequest();
    xhr.open("POST", card.dataset.importUrl);
    xhr.setRequestHeader("X-CSRFToken", card.querySelector("[name=csrfmiddlewaretoken]").value);
    xhr.setRequestHeader("Accept", "application/json");
    bar.hidden = false;
    bar.value = 0;
    card.classList.add("busy");
    message.textContent = "Sending " + files.length + " file" + (files.length === 1 ? "" : "s") + "…";
    xhr.upload.addEventListener("progress", function (event) {
      if (!event.lengthComputable) return;
      bar.value = Math.round((100 * event.loaded) / event.total);
      message.textContent = "Sending: " + bar.value + " %";
    });
    xhr.upload.addEventListener("load", function () { message.textContent = "Checking and storing…"; });
    xhr.addEventListener("load", function () {
      card.classList.remove("busy");
      var answer = {};
      try { answer = JSON.parse(xhr.responseText); } catch (e) { /* an HTML error page */ }
      if (xhr.status === 201) {
        bar.value = 100;
        message.textContent = answer.stored + " stored, " + answer.refused + " refused. Opening the result…";
        window.location.assign(answer.url);
      } else {
        message.textContent = answer.error || ("The upload failed (" + xhr.status + ").");
      }
    });
    xhr.addEventListener("error", function () {
      card.classList.remove("busy");
      message.textContent = "The upload failed: the connection was lost. Nothing more was stored.";
    });
    xhr.send(form);
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
})();

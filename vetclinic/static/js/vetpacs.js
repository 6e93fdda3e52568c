// The pages' few behaviours, as a file rather than inline script or hx-on attributes, so that
// the Content-Security-Policy can forbid both (vetclinic/security.py).
(function () {
  "use strict";

  // A free slot's button (imaging/orders/_slots.html) puts its time in the form.
  document.addEventListener("click", function (event) {
    var slot = event.target.closest("button.slot[data-time]");
    if (!slot) return;
    var time = document.getElementById("id_time");
    time.value = slot.dataset.time;
    time.focus();
    htmx.trigger(time, "change");
  });

  // The day board refreshes itself every 10 s, but not while someone works inside it.
  function boardIdle() {
    return !document.querySelector("#board .editing, #board details[open], #board :focus");
  }
  setInterval(function () {
    var board = document.getElementById("board");
    if (board && boardIdle()) htmx.trigger(board, "board-refresh");
  }, 10000);
})();

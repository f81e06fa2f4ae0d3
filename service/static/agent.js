/* Agent workspace: live SLA countdowns.
 *
 * Each clock is rendered by the server as <span class="sla" data-due="ISO" data-state="…">;
 * this script rewrites its text every second from the due time, so "time left" is never a
 * stale server render and a clock turns "breached" on screen the second it is due. Text is
 * written with textContent only. No inline code: the Content-Security-Policy forbids it.
 */
(function () {
  "use strict";

  var clocks = Array.prototype.slice.call(document.querySelectorAll(".sla[data-due]"));
  if (!clocks.length) { return; }

  function span(ms) {
    var s = Math.floor(Math.abs(ms) / 1000);
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
    var m = Math.floor((s % 3600) / 60), sec = s % 60;
    var two = function (n) { return (n < 10 ? "0" : "") + n; };
    if (d > 0) { return d + "d " + h + "h " + two(m) + "m"; }
    if (h > 0) { return h + "h " + two(m) + "m " + two(sec) + "s"; }
    return m + "m " + two(sec) + "s";
  }

  function setState(node, state) {
    ["running", "warning", "breached", "paused", "met"].forEach(function (c) {
      node.classList.toggle(c, c === state);
    });
  }

  function update(node, now) {
    var state = node.dataset.state;
    var due = Date.parse(node.dataset.due);
    if (state === "met") { node.textContent = "met"; return; }
    if (isNaN(due)) { return; }
    var left = due - now;
    if (state === "paused") {
      node.textContent = "paused · " + span(left) + " left when resumed";
      return;
    }
    if (left >= 0 && state !== "breached") {
      node.textContent = span(left) + " left";
      if (!node.classList.contains("warning")) { setState(node, "running"); }
    } else {
      node.textContent = "breached " + span(left) + " ago";
      setState(node, "breached");
    }
  }

  function tick() {
    var now = Date.now();
    clocks.forEach(function (node) { update(node, now); });
  }

  tick();
  setInterval(tick, 1000);
}());

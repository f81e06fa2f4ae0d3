// Admin reports: live what-if estimates while thresholds are edited, and the window picker.
// No inline scripts anywhere (strict CSP); text is written with textContent only.
(function () {
  "use strict";

  function pct(x) { return x === null || x === undefined ? "–" : (100 * x).toFixed(1) + "%"; }

  function describe(est) {
    var h = est.head, c = est.class;
    var text = "Holdout estimate: auto-apply " + pct(h.applied.coverage) + " of tickets at precision " +
      pct(h.applied.precision) + "; suggest " + pct(h.suggested.coverage) + " at " + pct(h.suggested.precision) + ".";
    if (c && c.n) {
      text += " Class " + c.label + ": applied " + pct(c.applied.coverage) + " of its " + c.n +
        " predictions (precision " + pct(c.applied.precision) + "), suggested " + pct(c.suggested.coverage) + ".";
    }
    return text;
  }

  function estimate(form, params) {
    var out = form.querySelector("output.estimate");
    var query = new URLSearchParams(params);
    query.set("head", form.dataset.head);
    fetch(form.dataset.whatif + "?" + query.toString(), { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (body) {
        if (!body.ok) { out.textContent = body.error || "No estimate."; return; }
        if (!body.available) { out.textContent = body.reason; return; }
        var now = document.createElement("span"), next = document.createElement("strong");
        now.className = "est-now";
        next.className = "est-new";
        now.textContent = "Now: " + describe(body.current);
        next.textContent = "If saved: " + describe(body.proposed);
        out.replaceChildren(now, next);
      })
      .catch(function () { out.textContent = "Estimate unavailable (network)."; });
  }

  function debounce(fn, ms) {
    var t = null;
    return function () { clearTimeout(t); t = setTimeout(fn, ms); };
  }

  function wireThresholds(form) {
    var label = form.querySelector(".pf-label"), apply = form.querySelector(".pf-apply"),
        suggest = form.querySelector(".pf-suggest");
    var run = debounce(function () {
      estimate(form, { label: label.value, apply: apply.value, suggest: suggest.value });
    }, 250);
    label.addEventListener("change", function () {
      var opt = label.options[label.selectedIndex];
      apply.value = opt.dataset.apply || "";
      suggest.value = opt.dataset.suggest || "";
      run();
    });
    apply.addEventListener("input", run);
    suggest.addEventListener("input", run);
  }

  function wireMode(form) {
    form.querySelectorAll(".pf-mode").forEach(function (radio) {
      radio.addEventListener("change", function () { estimate(form, { mode: radio.value }); });
    });
  }

  document.querySelectorAll("form.policy-form").forEach(wireThresholds);
  document.querySelectorAll("form.mode-form").forEach(wireMode);
  document.querySelectorAll("select.auto-submit").forEach(function (sel) {
    sel.addEventListener("change", function () { sel.form.submit(); });
  });
}());

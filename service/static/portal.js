/* Portal: knowledge suggestions while the customer types.
 *
 * Debounced (250 ms) queries to /portal/suggest; each suggestion can be opened in
 * place (its full text fetched from /portal/articles/<id>) and marked "This solved it".
 * All text from the server is put on the page with textContent / createElement, never
 * innerHTML, so article or ticket text containing markup stays text. No inline code:
 * the page's Content-Security-Policy forbids it.
 */
(function () {
  "use strict";

  var panel = document.getElementById("suggestions");
  if (!panel) { return; }  // control-group visitors get no suggestions at all
  var list = document.getElementById("suggestion-list");
  var hint = document.getElementById("suggestions-hint");
  var subject = document.getElementById("subject");
  var details = document.getElementById("details");
  var DEBOUNCE_MS = 250;
  var timer = null;
  var lastQuery = "";
  var generation = 0;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function safeHttpUrl(url) {
    return typeof url === "string" && /^https?:\/\//i.test(url) ? url : null;
  }

  function queryText() {
    return (subject.value + "\n" + details.value).trim();
  }

  function schedule() {
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(fetchSuggestions, DEBOUNCE_MS);
  }

  function fetchSuggestions() {
    var q = queryText();
    if (q === lastQuery) { return; }
    lastQuery = q;
    var mine = ++generation;
    if (q.length < 3) { render([]); return; }
    fetch(panel.dataset.suggestUrl + "?q=" + encodeURIComponent(q.slice(0, 1000)),
          {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : {suggestions: []}; })
      .then(function (data) { if (mine === generation) { render(data.suggestions || []); } })
      .catch(function () { /* suggestions are a help, never an obstacle */ });
  }

  function render(items) {
    while (list.firstChild) { list.removeChild(list.firstChild); }
    hint.textContent = items.length ? "Open an article to read it here."
      : (queryText().length < 3 ? "Suggestions appear here as you describe the problem."
                                 : "No article matches yet: keep describing, or send your request.");
    items.forEach(function (item) { list.appendChild(suggestionItem(item)); });
  }

  function suggestionItem(item) {
    var li = el("li", "suggestion");
    li.dataset.articleId = item.article_id;
    var toggle = el("button", "suggestion-title", item.title);
    toggle.type = "button";
    toggle.setAttribute("aria-expanded", "false");
    li.appendChild(toggle);
    var teaser = el("div", "teaser");  // hidden while the full article is open
    teaser.appendChild(el("p", "snippet", item.snippet));
    if (item.attribution) { teaser.appendChild(el("p", "credit", "Source: " + item.attribution)); }
    li.appendChild(teaser);
    var body = el("div", "article-body");
    body.hidden = true;
    li.appendChild(body);
    toggle.addEventListener("click", function () {
      toggleArticle(item, toggle, body);
      teaser.hidden = !body.hidden;  // the full text replaces the teaser
    });
    return li;
  }

  function toggleArticle(item, toggle, body) {
    var open = toggle.getAttribute("aria-expanded") === "true";
    toggle.setAttribute("aria-expanded", open ? "false" : "true");
    body.hidden = open;
    if (open || body.dataset.loaded) { return; }
    body.dataset.loaded = "1";
    body.appendChild(el("p", "muted", "Loading…"));
    var url = panel.dataset.articleUrl.replace("ARTICLE_ID", encodeURIComponent(item.article_id));
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.json(); })
      .then(function (data) { showArticle(body, data.article); })
      .catch(function () { body.firstChild.textContent = "Could not load the article."; });
  }

  function showArticle(body, article) {
    while (body.firstChild) { body.removeChild(body.firstChild); }
    if (!article) { body.appendChild(el("p", "muted", "This article is no longer available.")); return; }
    // The article scrolls inside the panel: it must take keyboard focus so it can be
    // scrolled without a mouse (and a screen reader announces it as a named region).
    var text = el("div", "text article-text", article.body);
    text.tabIndex = 0;
    text.setAttribute("role", "region");
    text.setAttribute("aria-label", "Article: " + (article.title || "text"));
    body.appendChild(text);
    if (article.attribution) {
      var credit = el("p", "credit", "Source: " + article.attribution);
      var href = safeHttpUrl(article.url);
      if (href) {
        credit.appendChild(document.createTextNode(" · "));
        var link = el("a", null, "original article");
        link.href = href;
        link.rel = "noopener noreferrer";
        credit.appendChild(link);
      }
      body.appendChild(credit);
    }
    body.appendChild(solvedForm(article.id));
  }

  function solvedForm(articleId) {
    var form = el("form", "solved-form");
    form.method = "post";
    form.action = panel.dataset.solvedUrl;
    [["csrf_token", panel.dataset.csrf], ["article_id", articleId]].forEach(function (pair) {
      var input = el("input");
      input.type = "hidden";
      input.name = pair[0];
      input.value = pair[1];
      form.appendChild(input);
    });
    var button = el("button", "primary solved", "This solved it");
    button.type = "submit";
    form.appendChild(button);
    return form;
  }

  subject.addEventListener("input", schedule);
  details.addEventListener("input", schedule);
  if (queryText()) { schedule(); }  // the form came back with an error: suggest again
}());

// The console's live parts, htmx-style: an element with hx-get (or a form with hx-post) loads
// HTML from the server into hx-target (itself by default). hx-trigger: "load", "every Ns",
// "input" (debounced), or the default (click; submit for forms). No build step, no library.
(function () {
  "use strict";
  function target(el) {
    var sel = el.getAttribute("hx-target");
    return sel ? document.querySelector(sel) : el;
  }
  function swap(el, html) {
    var t = target(el);
    if (t) { t.innerHTML = html; wire(t); }
  }
  function load(el, method, body) {
    var url = el.getAttribute(method === "GET" ? "hx-get" : "hx-post");
    if (method === "GET" && el.form === undefined && el.name && el.value !== undefined) {
      url += (url.indexOf("?") < 0 ? "?" : "&") + encodeURIComponent(el.name) + "=" + encodeURIComponent(el.value);
    }
    fetch(url, { method: method, body: body, headers: { "HX-Request": "true" }, credentials: "same-origin" })
      .then(function (r) {
        var go = r.headers.get("HX-Redirect");
        if (go) { window.location = go; return null; }
        return r.text();
      })
      .then(function (html) { if (html !== null) swap(el, html); });
  }
  function wire(root) {
    root.querySelectorAll("[hx-get],[hx-post]").forEach(function (el) {
      if (el.dataset.hxWired) return;
      el.dataset.hxWired = "1";
      var method = el.hasAttribute("hx-post") ? "POST" : "GET";
      var trigger = el.getAttribute("hx-trigger") || (el.tagName === "FORM" ? "submit" : "click");
      var every = /^every (\d+)s$/.exec(trigger);
      if (trigger === "load") { load(el, method); return; }
      if (every) { setInterval(function () { if (document.body.contains(el)) load(el, method); }, +every[1] * 1000); return; }
      var timer = null;
      el.addEventListener(trigger, function (ev) {
        ev.preventDefault();
        var body = el.tagName === "FORM" ? new FormData(el) : undefined;
        if (trigger === "input") { clearTimeout(timer); timer = setTimeout(function () { load(el, method, body); }, 250); }
        else { load(el, method, body); }
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () { wire(document); });
})();

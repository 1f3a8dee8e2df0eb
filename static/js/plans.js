// 計画・実績: completion items appear once an actual end is typed; long imports show progress.
(function () {
  "use strict";
  document.addEventListener("input", function (event) {
    var el = event.target;
    var code = el.getAttribute && el.getAttribute("data-actual-end");
    if (!code) { return; }
    var box = document.querySelector('[data-completion-for="' + code + '"]');
    if (box) { box.hidden = el.value.trim() === ""; }
  });

  function poll(url, bar, text, onDone) {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (data) {
          if (bar && data.total) { bar.max = data.total; bar.value = data.processed; }
          if (text) {
            text.textContent = (data.phase === "apply" ? "反映しています… " : "内容を確認しています… ") +
              (data.total ? data.processed.toLocaleString() + " / " + data.total.toLocaleString() + " 行" : "");
          }
          if (data.finished && onDone) { onDone(data); return; }
        }
        window.setTimeout(function () { poll(url, bar, text, onDone); }, 1000);
      })
      .catch(function () { window.setTimeout(function () { poll(url, bar, text, onDone); }, 2000); });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute || !form.hasAttribute("data-progress-form") || event.defaultPrevented) { return; }
    var box = form.parentNode.querySelector("[data-import-progress]");
    if (!box) { return; }
    box.hidden = false;
    var button = form.querySelector("button[type=submit]");
    if (button) { window.setTimeout(function () { button.disabled = true; }, 0); }
    var url = form.getAttribute("data-status-url");
    window.setTimeout(function () {
      poll(url, box.querySelector("[data-progress-bar]"), box.querySelector("[data-progress-text]"), null);
    }, 800);
  });

  var running = document.querySelector("[data-poll-url]");
  if (running) {
    poll(running.getAttribute("data-poll-url"), running.querySelector("[data-progress-bar]"), running.querySelector("p"),
      function (data) { window.location.assign(data.url); });
  }
})();

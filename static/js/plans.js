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
          if (text && data.phase === "export") {
            text.textContent = data.finished ? "ファイルを作成しました。ダウンロードが始まります。" :
              "ファイルを作成しています… " +
              (data.total ? data.processed.toLocaleString() + " / " + data.total.toLocaleString() + " 団体" : "");
          } else if (text) {
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

  // The national download takes a while: give it a job id and show how far the file is.
  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a[data-export]") : null;
    if (!link || event.defaultPrevented || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) { return; }
    var links = link.closest("[data-export-links]");
    var box = links && links.parentNode.querySelector("[data-export-progress]");
    if (!box || !window.crypto || !window.crypto.getRandomValues) { return; }
    event.preventDefault();
    var bytes = new Uint8Array(10);
    window.crypto.getRandomValues(bytes);
    var job = Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
    var bar = box.querySelector("[data-progress-bar]");
    var text = box.querySelector("[data-progress-text]");
    bar.removeAttribute("value");
    text.textContent = "ファイルを作成しています…";
    box.hidden = false;
    var href = link.getAttribute("href");
    window.location.assign(href + (href.indexOf("?") < 0 ? "?" : "&") + "job=" + job);
    window.setTimeout(function () {
      poll(links.getAttribute("data-status-url").replace("JOBID", job), bar, text, function () { bar.value = bar.max; });
    }, 500);
  });

  var running = document.querySelector("[data-poll-url]");
  if (running) {
    poll(running.getAttribute("data-poll-url"), running.querySelector("[data-progress-bar]"), running.querySelector("p"),
      function (data) { window.location.assign(data.url); });
  }
})();

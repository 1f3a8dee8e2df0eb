// 問い合わせフォーム: 入力中の件名・質問に似たFAQを表示する（CSPのためインラインスクリプトは使わない）。
(function () {
  "use strict";
  var box = document.querySelector("[data-suggest-url]");
  if (!box) { return; }
  var url = box.getAttribute("data-suggest-url");
  var ids = box.getAttribute("data-suggest-for").split(" ");
  var list = box.querySelector("ul");
  var timer = null, last = "";
  function text() { return ids.map(function (id) { var el = document.getElementById(id); return el ? el.value : ""; }).join(" ").trim(); }
  function render(items) {
    list.textContent = "";
    items.forEach(function (item) {
      var li = document.createElement("li");
      var a = document.createElement("a");
      a.href = item.url; a.target = "_blank"; a.rel = "noopener"; a.textContent = item.question;
      var cat = document.createElement("span"); cat.className = "badge"; cat.textContent = item.category;
      li.appendChild(cat); li.appendChild(document.createTextNode(" ")); li.appendChild(a);
      list.appendChild(li);
    });
    box.hidden = items.length === 0;
  }
  function query() {
    var q = text();
    if (q === last) { return; }
    last = q;
    if (q.length < 2) { render([]); return; }
    fetch(url + "?q=" + encodeURIComponent(q.slice(0, 500)), { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : { items: [] }; })
      .then(function (data) { render(data.items || []); })
      .catch(function () { render([]); });
  }
  ids.forEach(function (id) {
    var el = document.getElementById(id);
    if (el) { el.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(query, 300); }); }
  });
})();

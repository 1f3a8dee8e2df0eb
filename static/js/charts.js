// デジタルPMO: draw every <div data-figure='{"data":…,"layout":…}'> with Plotly (no inline script: CSP).
(function () {
  "use strict";
  function draw() {
    if (!window.Plotly) { return; }
    var nodes = document.querySelectorAll("[data-figure]");
    Array.prototype.forEach.call(nodes, function (node) {
      var figure;
      try { figure = JSON.parse(node.getAttribute("data-figure")); } catch (e) { return; }
      if (!figure.data || figure.data.length === 0) {
        node.textContent = "表示するデータがありません。";
        node.classList.add("chart--empty");
        return;
      }
      if (figure.layout && figure.layout.height) { node.style.height = figure.layout.height + "px"; }
      window.Plotly.newPlot(node, figure.data, figure.layout || {}, {
        responsive: true, displaylogo: false,
        modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d", "toggleSpikelines"],
        toImageButtonOptions: { format: "png", filename: node.getAttribute("data-name") || "figure" }
      });
      node.setAttribute("data-drawn", "1");
    });
  }
  // "select all" checkbox of a table: <input type=checkbox data-check-all="name">
  document.addEventListener("change", function (event) {
    var el = event.target;
    var name = el.getAttribute && el.getAttribute("data-check-all");
    if (!name) { return; }
    var boxes = document.querySelectorAll("input[type=checkbox][name='" + name + "']");
    Array.prototype.forEach.call(boxes, function (box) { box.checked = el.checked; });
  });
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", draw); } else { draw(); }
})();

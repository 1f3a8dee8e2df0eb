// 補助金: draw the Plotly figures whose JSON the server put in <script type="application/json" id="plotly-NAME">.
(function () {
  "use strict";
  function draw() {
    if (!window.Plotly) { return; }
    document.querySelectorAll("[data-plotly]").forEach(function (el) {
      var source = document.getElementById("plotly-" + el.getAttribute("data-plotly"));
      if (!source) { return; }
      var fig = JSON.parse(source.textContent);
      window.Plotly.newPlot(el, fig.data, fig.layout, {displaylogo: false, responsive: true, locale: "ja"})
        .then(function () { el.setAttribute("data-drawn", "1"); });
    });
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", draw); } else { draw(); }
})();

// Draws the portal's charts (layout/chart.html): each <canvas data-chart="ID"> from the JSON block #ID ({days, series:
// [{label, values}]}). No inline script (the CSP forbids it); the same numbers are in a table beside each
// chart, so the pages read the same without JavaScript.
(function () {
  "use strict";
  var colours = ["#1095c1", "#d93526", "#398712", "#8a5cf5"];

  function draw(canvas) {
    var data = document.getElementById(canvas.dataset.chart);
    if (!data || typeof window.Chart === "undefined") {
      return;
    }
    var chart = JSON.parse(data.textContent);
    new window.Chart(canvas, {
      type: canvas.dataset.kind || "bar",
      data: {
        labels: chart.days,
        datasets: chart.series.map(function (s, i) {
          return {
            label: s.label,
            data: s.values.map(function (v) {
              return v === null ? null : Number(v);
            }),
            backgroundColor: colours[i % colours.length],
            borderColor: colours[i % colours.length],
          };
        }),
      },
      options: { animation: false, responsive: true, scales: { y: { beginAtZero: true } } },
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("canvas[data-chart]").forEach(draw);
  });
})();

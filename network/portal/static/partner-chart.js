// Draws the partner's earnings per day from the page's JSON block (no inline script: the CSP forbids it).
// The same numbers are in the table beside the chart, so the page reads the same without JavaScript.
(function () {
  "use strict";
  var data = document.getElementById("earnings-data");
  var canvas = document.getElementById("earnings-chart");
  if (!data || !canvas || typeof window.Chart === "undefined") {
    return;
  }
  var chart = JSON.parse(data.textContent);
  var colours = ["#1095c1", "#d93526", "#398712", "#8a5cf5"];
  new window.Chart(canvas, {
    type: "bar",
    data: {
      labels: chart.days,
      datasets: chart.series.map(function (s, i) {
        return {
          label: "Earnings (" + s.currency + ")",
          data: s.earnings.map(Number),
          backgroundColor: colours[i % colours.length],
        };
      }),
    },
    options: {
      animation: false,
      responsive: true,
      scales: { y: { beginAtZero: true } },
    },
  });
})();

// scopeline run page: Plotly plots from /run/data, live counts from /run/events (SSE).
// No data is kept here; the server decides everything.
(function () {
  "use strict";
  const root = document.getElementById("run");
  if (!root) return;
  const path = encodeURIComponent(root.dataset.path);
  const colours = {accepted: "#2a9d4b", discarded: "#d1495b", failed: "#777", pending: "#e9a23b"};

  function draw(plot) {
    let div = document.getElementById("plot-" + plot.id);
    if (!div) {
      div = document.createElement("div");
      div.id = "plot-" + plot.id;
      div.className = "plot";
      document.getElementById("plots").appendChild(div);
    }
    const traces = Object.entries(plot.series).map(([status, s]) => plot.kind === "histogram"
      ? {type: "histogram", x: s.y, name: status, marker: {color: colours[status]}, opacity: 0.75}
      : {type: "scattergl", mode: plot.lines ? "lines" : "markers", x: s.x, y: s.y, name: status,
         customdata: s.keys, marker: {color: colours[status], size: 6}, line: {color: colours[status]}});
    const shapes = [];
    if (plot.kind === "histogram" && plot.threshold != null) {
      shapes.push({type: "line", xref: "x", yref: "paper", x0: plot.threshold, x1: plot.threshold, y0: 0, y1: 1,
                   line: {color: "#000", dash: "dash"}});
    }
    if (plot.band) {
      shapes.push({type: "rect", xref: "paper", yref: "y", x0: 0, x1: 1, y0: plot.band[0], y1: plot.band[1],
                   fillcolor: "#2a9d4b", opacity: 0.1, line: {width: 0}});
    }
    if (plot.reference != null) {
      shapes.push({type: "line", xref: "paper", yref: "y", x0: 0, x1: 1, y0: plot.reference, y1: plot.reference,
                   line: {color: "#2a9d4b"}});
    }
    const layout = {title: {text: plot.title}, barmode: "overlay", shapes: shapes, height: 320,
                    margin: {l: 60, r: 20, t: 40, b: 50},
                    xaxis: {title: {text: plot.x_title || ""}}, yaxis: {title: {text: plot.y_title || (plot.kind === "histogram" ? "count" : "")}}};
    if (plot.y_range) layout.yaxis.range = plot.y_range;
    Plotly.react(div, traces, layout, {displaylogo: false, responsive: true});
    if (!div.dataset.clicks) {  // a click on a point opens its item
      div.dataset.clicks = "1";
      div.on("plotly_click", (ev) => {
        const key = ev.points && ev.points[0] && ev.points[0].customdata;
        if (key) window.location.href = "/item?path=" + path + "&key=" + encodeURIComponent(key);
      });
    }
  }

  // sliders: bound to the number inputs of the decision form (typing still works);
  // a change re-decides, debounced
  const form = document.getElementById("thresholds");
  if (form) {
    let timer = null;
    const submitSoon = () => {
      clearTimeout(timer);
      timer = setTimeout(() => { if (!form.querySelector("button[type=submit]").disabled) form.requestSubmit(); }, 400);
    };
    form.querySelectorAll("input.slider").forEach((slider) => {
      const number = form.querySelector('input[name="' + slider.dataset.for + '"]');
      slider.addEventListener("input", () => { number.value = slider.value; submitSoon(); });
      number.addEventListener("input", () => {
        if (number.value !== "" && !isNaN(Number(number.value))) slider.value = number.value;
        submitSoon();
      });
    });
  }

  function refreshPlots() {
    fetch("/run/data?path=" + path, {credentials: "same-origin"})
      .then((r) => r.ok ? r.json() : Promise.reject(r.status))
      .then((data) => { data.plots.forEach(draw); document.getElementById("plots").dataset.ready = "1"; })
      .catch((e) => console.warn("plot data", e));
  }

  document.body.addEventListener("redecided", refreshPlots);
  refreshPlots();

  if (window.EventSource) {
    const events = new EventSource("/run/events?path=" + path);
    let first = true;
    events.addEventListener("counts", (e) => {
      const counts = JSON.parse(e.data);
      for (const [name, value] of Object.entries(counts)) {
        const el = document.querySelector('[data-count="' + name + '"]');
        if (el) el.textContent = value;
      }
      const live = document.getElementById("live");
      if (live && !counts.running) live.textContent = "finished";
      if (!first) { htmx.trigger(document.body, "runchanged"); refreshPlots(); }
      first = false;
    });
    events.addEventListener("done", () => events.close());
  }
})();

// scopeline item page: the movie's sampled frame doses or its trajectory (Plotly), from /item/data.
(function () {
  "use strict";
  const root = document.getElementById("item");
  if (!root || root.dataset.tool === "clean") return;
  const url = "/item/data?path=" + encodeURIComponent(root.dataset.path) + "&key=" + encodeURIComponent(root.dataset.key);
  const box = document.getElementById("item-plots");

  function plot(id, traces, layout) {
    const div = document.createElement("div");
    div.id = "plot-" + id;
    div.className = "plot";
    box.appendChild(div);
    Plotly.newPlot(div, traces, Object.assign({height: 360, margin: {l: 60, r: 20, t: 40, b: 50}}, layout),
                   {displaylogo: false, responsive: true});
  }
  const hline = (y, colour, dash) => ({type: "line", xref: "paper", yref: "y", x0: 0, x1: 1, y0: y, y1: y,
                                       line: {color: colour, dash: dash || "solid"}});

  fetch(url, {credentials: "same-origin"}).then((r) => r.ok ? r.json() : Promise.reject(r.status)).then((d) => {
    document.getElementById("item-note").textContent = d.note || "";
    if (d.kind === "dose" && d.frames.length) {
      const shapes = [];
      if (d.band) shapes.push({type: "rect", xref: "paper", yref: "y", x0: 0, x1: 1, y0: d.band[0], y1: d.band[1],
                               fillcolor: "#2a9d4b", opacity: 0.1, line: {width: 0}});
      if (d.reference != null) shapes.push(hline(d.reference, "#2a9d4b"));
      plot("frame_doses", [{type: "scatter", mode: "lines+markers", x: d.frames, y: d.doses, name: "sampled frames"}],
           {title: {text: "Dose of the sampled frames (reference and band in green)"}, shapes: shapes,
            xaxis: {title: {text: "frame (0-based)"}, tickformat: "d"}, yaxis: {title: {text: "dose (e-/Å²)"}}});
    } else if (d.kind === "maxshift" && d.x.length) {
      plot("trajectory", [{type: "scatter", mode: "lines+markers", x: d.x, y: d.y, text: d.frames.map((f) => "frame " + f),
                           marker: {color: d.frames, colorscale: "Viridis", size: 7}, name: "trajectory"}],
           {title: {text: "Trajectory (" + d.unit + ", frame 1 at 0,0)"}, xaxis: {title: {text: "x (" + d.unit + ")"}},
            yaxis: {title: {text: "y (" + d.unit + ")"}, scaleanchor: "x"}});
      const shapes = d.max_frame_shift != null ? [hline(d.max_frame_shift, "#d1495b", "dash")] : [];
      plot("steps", [{type: "bar", x: d.frames.slice(1), y: d.steps, name: "step"}],
           {title: {text: "Step from the previous frame (" + d.unit + "; limit dashed)"}, shapes: shapes,
            xaxis: {title: {text: "frame"}}, yaxis: {title: {text: d.unit}}});
    }
    box.dataset.ready = "1";
  }).catch((e) => { document.getElementById("item-note").textContent = "no data: " + e; box.dataset.ready = "1"; });
})();

// scopeline unit explorer: footprints PNG + label image (click-to-unit), uPlot traces
// decimated by the server, keyboard curation saved to RUN/curation.json by the server.
(function () {
  "use strict";
  const root = document.getElementById("explorer");
  if (!root) return;
  const path = encodeURIComponent(root.dataset.path);
  const img = document.getElementById("fov-img");
  const canvas = document.getElementById("fov-overlay");
  const boxEl = document.getElementById("fov-box");
  const msg = document.getElementById("ex-msg");
  const tbody = document.querySelector("#unit-table tbody");

  let labels = null, W = 0, H = 0;
  let units = [];              // [{id, row, snr, size, y, x, box}]
  let byId = new Map();
  let curation = {rejected: [], accepted: [], merges: []};
  let current = -1;            // row of the unit shown
  let selection = [];          // rows selected (for a merge)
  let plots = null;
  let traceToken = 0;

  function say(text, ok) {
    msg.textContent = text;
    msg.className = ok === false ? "error" : "ok";
  }

  function decisionOf(id) {
    if (curation.rejected.includes(id)) return "rejected";
    if (curation.accepted.includes(id)) return "accepted";
    return "undecided";
  }
  function groupOf(id) { return curation.merges.find((g) => g.includes(id)) || null; }

  // --- the overlay: decisions, selection and the current unit painted from the label image
  function paint() {
    if (!labels) return;
    const ctx = canvas.getContext("2d");
    const image = ctx.createImageData(W, H);
    const px = image.data;
    const colour = new Array(units.length + 1).fill(null);
    units.forEach((u, row) => {
      const d = decisionOf(u.id);
      if (d === "rejected") colour[row + 1] = [230, 40, 40, 120];
      else if (d === "accepted") colour[row + 1] = [40, 200, 80, 70];
      if (groupOf(u.id)) colour[row + 1] = [170, 80, 255, 110];
    });
    selection.forEach((row) => { colour[row + 1] = [0, 200, 255, 140]; });
    if (current >= 0) colour[current + 1] = [255, 255, 0, 170];
    for (let i = 0; i < labels.length; i++) {
      const c = colour[labels[i]];
      if (c) { const k = 4 * i; px[k] = c[0]; px[k + 1] = c[1]; px[k + 2] = c[2]; px[k + 3] = c[3]; }
    }
    ctx.putImageData(image, 0, 0);
  }

  function counts() {
    const n = units.length, r = curation.rejected.length, a = curation.accepted.length;
    document.getElementById("ex-counts").textContent =
      `${n} units: ${a} accepted, ${r} rejected, ${n - a - r} undecided; ${curation.merges.length} merge group(s)`;
    tbody.querySelectorAll("tr").forEach((tr) => {
      const id = Number(tr.dataset.id);
      const d = decisionOf(id), g = groupOf(id);
      tr.className = d + (Number(tr.dataset.row) === current ? " current" : "");
      tr.lastChild.textContent = d + (g ? " (merged " + g.join("+") + ")" : "");
    });
  }

  function table() {
    const rows = units.map((u, row) =>
      `<tr data-row="${row}" data-id="${u.id}"><td>${u.id}</td><td class="num">${u.snr}</td>` +
      `<td class="num">${u.size}</td><td></td></tr>`);
    tbody.innerHTML = rows.join("");
    tbody.addEventListener("click", (e) => {
      const tr = e.target.closest("tr");
      if (tr) select(Number(tr.dataset.row), e.shiftKey);
    });
  }

  // --- traces
  function makePlots() {
    const width = Math.max(300, document.getElementById("plot-c").clientWidth || 600);
    const sync = uPlot.sync("units");
    const common = (label, colour, height) => ({
      width: width, height: height,
      cursor: {sync: {key: sync.key}, drag: {x: true, y: false, setScale: false}},
      scales: {x: {time: false}},
      axes: [{label: "time (s)"}, {label: label}],
      legend: {show: false},
      series: [{}, {label: label, stroke: colour, width: 1}],
      hooks: {
        setSelect: [(u) => {
          if (u.select.width < 3) return;
          const t0 = u.posToVal(u.select.left, "x"), t1 = u.posToVal(u.select.left + u.select.width, "x");
          u.setSelect({left: 0, width: 0}, false);
          loadTrace(t0, t1);
        }],
        setCursor: [(u) => {
          const i = u.cursor.idx;
          document.getElementById("cursor-time").textContent =
            i == null || !u.data[0].length ? "-" : u.data[0][i].toFixed(3) + " s";
        }],
        ready: [(u) => u.over.addEventListener("dblclick", () => loadTrace(null, null))],
      },
    });
    plots = {
      c: new uPlot(common("C (calcium)", "#1f77b4", 220), [[], []], document.getElementById("plot-c")),
      s: new uPlot(common("S (spikes)", "#d62728", 140), [[], []], document.getElementById("plot-s")),
    };
  }

  function loadTrace(t0, t1) {
    if (current < 0) return;
    const u = units[current];
    const width = plots ? Math.round(plots.c.bbox.width / devicePixelRatio) || 800 : 800;
    let url = `/miniscope/explorer/trace?path=${path}&unit=${u.id}&width=${width}`;
    if (t0 != null) url += `&t0=${t0}&t1=${t1}`;
    const token = ++traceToken;
    fetch(url, {credentials: "same-origin"}).then((r) => r.ok ? r.json() : r.text().then((t) => Promise.reject(t)))
      .then((d) => {
        if (token !== traceToken) return;  // a newer request won
        if (!plots) makePlots();
        plots.c.setData([d.x, d.c]);
        plots.s.setData([d.x, d.s]);
        root.dataset.traceUnit = d.unit;
        root.dataset.traceColumns = d.columns;
      })
      .catch((e) => say("trace: " + e, false));
  }

  function select(row, add) {
    if (row < 0 || row >= units.length) return;
    if (add) {
      const at = selection.indexOf(row);
      if (at >= 0) selection.splice(at, 1); else selection.push(row);
    } else {
      selection = [row];
    }
    current = row;
    const u = units[row];
    document.getElementById("unit-title").textContent = "unit " + u.id;
    document.getElementById("unit-state").textContent = decisionOf(u.id) +
      (groupOf(u.id) ? ", merged " + groupOf(u.id).join("+") : "") + ` · SNR ${u.snr} · ${u.size} px`;
    document.getElementById("selection").textContent = selection.length > 1
      ? "selected: " + selection.map((r) => units[r].id).join(", ") : "";
    root.dataset.current = u.id;
    const tr = tbody.querySelector(`tr[data-row="${row}"]`);
    if (tr) tr.scrollIntoView({block: "nearest"});
    counts();
    paint();
    loadTrace(null, null);
  }

  // --- curation (the server writes RUN/curation.json and answers the whole curation)
  function post(url, fields) {
    const body = new URLSearchParams({path: root.dataset.path, ...fields});
    return fetch(url, {method: "POST", body: body, credentials: "same-origin"})
      .then((r) => r.ok ? r.json() : r.text().then((t) => Promise.reject(t)));
  }
  function changed(c) {
    curation = c;
    counts();
    paint();
    if (current >= 0) select(current, false);
  }
  function decide(decision) {
    if (current < 0) return say("select a unit first", false);
    const id = units[current].id;
    post("/miniscope/explorer/decide", {unit: id, decision: decision})
      .then((c) => { changed(c); say(`unit ${id}: ${decision}`); root.dataset.lastDecision = id + ":" + decision; })
      .catch((e) => say(e, false));
  }
  function merge() {
    if (selection.length < 2) return say("select two units or more (shift-click or drag a box)", false);
    const ids = selection.map((r) => units[r].id);
    post("/miniscope/explorer/merge", {units: ids.join(",")})
      .then((c) => { changed(c); say("merged " + ids.join("+")); }).catch((e) => say(e, false));
  }
  function unmerge() {
    if (current < 0) return;
    post("/miniscope/explorer/unmerge", {unit: units[current].id})
      .then((c) => { changed(c); say("merge undone"); }).catch((e) => say(e, false));
  }
  function reexport() {
    say("re-exporting ...");
    post("/miniscope/explorer/export", {})
      .then((s) => say(`re-exported ${s.units_exported} of ${s.units_before} units to ${s.export_dir}` +
                       ` (rejected: ${s.rejected.join(", ") || "-"}; merged: ${s.merged.map((g) => g.join("+")).join("; ") || "-"})`))
      .catch((e) => say(e, false));
  }

  document.getElementById("btn-accept").addEventListener("click", () => decide("accepted"));
  document.getElementById("btn-reject").addEventListener("click", () => decide("rejected"));
  document.getElementById("btn-merge").addEventListener("click", merge);
  document.getElementById("btn-unmerge").addEventListener("click", unmerge);
  document.getElementById("btn-export").addEventListener("click", reexport);

  document.addEventListener("keydown", (e) => {
    if (e.target.closest("input, select, textarea") || e.ctrlKey || e.metaKey || e.altKey) return;
    const keys = {a: () => decide("accepted"), r: () => decide("rejected"), u: () => decide("undecided"), m: merge,
                  ArrowRight: () => select(current + 1, false), ArrowDown: () => select(current + 1, false),
                  ArrowLeft: () => select(Math.max(0, current - 1), false),
                  ArrowUp: () => select(Math.max(0, current - 1), false)};
    const act = keys[e.key];
    if (act) { e.preventDefault(); act(); }
  });

  // --- click and box select on the field of view
  function pixelAt(ev) {
    const r = canvas.getBoundingClientRect();
    return [Math.floor((ev.clientX - r.left) / r.width * W), Math.floor((ev.clientY - r.top) / r.height * H)];
  }
  let dragFrom = null;
  canvas.addEventListener("mousedown", (ev) => { dragFrom = [ev.clientX, ev.clientY, pixelAt(ev)]; ev.preventDefault(); });
  window.addEventListener("mousemove", (ev) => {
    if (!dragFrom) return;
    const r = canvas.getBoundingClientRect();
    const x0 = Math.min(dragFrom[0], ev.clientX) - r.left, y0 = Math.min(dragFrom[1], ev.clientY) - r.top;
    Object.assign(boxEl.style, {left: x0 + "px", top: y0 + "px", width: Math.abs(ev.clientX - dragFrom[0]) + "px",
                                height: Math.abs(ev.clientY - dragFrom[1]) + "px"});
    boxEl.hidden = Math.abs(ev.clientX - dragFrom[0]) + Math.abs(ev.clientY - dragFrom[1]) < 4;
  });
  window.addEventListener("mouseup", (ev) => {
    if (!dragFrom) return;
    const [sx, sy, p0] = dragFrom;
    dragFrom = null;
    boxEl.hidden = true;
    if (Math.abs(ev.clientX - sx) + Math.abs(ev.clientY - sy) < 4) {  // a click
      const [x, y] = p0;
      const label = x >= 0 && y >= 0 && x < W && y < H ? labels[y * W + x] : 0;
      if (label > 0) select(label - 1, ev.shiftKey); else say("no unit there");
      return;
    }
    const p1 = pixelAt(ev);
    const [x0, x1] = [Math.min(p0[0], p1[0]), Math.max(p0[0], p1[0])];
    const [y0, y1] = [Math.min(p0[1], p1[1]), Math.max(p0[1], p1[1])];
    const inside = units.filter((u) => u.x != null && u.x >= x0 && u.x <= x1 && u.y >= y0 && u.y <= y1).map((u) => u.row);
    if (!inside.length) return say("no unit in the box");
    selection = inside.slice();
    select(inside[0], false);
    selection = inside.slice();
    document.getElementById("selection").textContent = "selected: " + inside.map((r) => units[r].id).join(", ");
    paint();
  });

  // --- start: units, label image, first unit's trace
  Promise.all([
    fetch("/miniscope/explorer/units?path=" + path, {credentials: "same-origin"}).then((r) => r.ok ? r.json() : r.text().then((t) => Promise.reject(t))),
    fetch("/miniscope/explorer/labels?path=" + path, {credentials: "same-origin"}).then((r) => {
      if (!r.ok) return Promise.reject(r.status);
      H = Number(r.headers.get("X-Height")); W = Number(r.headers.get("X-Width"));
      const dtype = r.headers.get("X-Dtype");
      return r.arrayBuffer().then((b) => dtype === "uint32" ? new Uint32Array(b) : new Uint16Array(b));
    }),
  ]).then(([data, lab]) => {
    units = data.units;
    curation = data.curation;
    labels = lab;
    canvas.width = W; canvas.height = H;
    byId = new Map(units.map((u) => [u.id, u]));
    table();
    counts();
    if (units.length) select(0, false);
    root.dataset.ready = "1";
  }).catch((e) => say("could not load the units: " + e, false));
})();

// scopeline miniscope page: one step's parameters at a time (every step stays in the form,
// so check / save / run send the whole set), and the run's progress by server-sent events.
(function () {
  "use strict";

  // --- step tabs: show one <details>, keep the others in the form (hidden)
  const nav = document.getElementById("step-nav");
  if (nav) {
    nav.addEventListener("click", (e) => {
      const link = e.target.closest("a[data-show]");
      if (!link) return;
      e.preventDefault();
      const step = link.dataset.show;
      document.querySelectorAll("#params details[data-step]").forEach((d) => {
        d.hidden = !!step && d.dataset.step !== step;
        if (step) d.open = d.dataset.step === step;
      });
      nav.querySelectorAll("a").forEach((a) => a.classList.toggle("current", a === link));
      const from = document.querySelector("select[name=from_step]");
      if (from && step) from.value = step;
      history.replaceState(null, "", link.href);
    });
  }

  // --- progress of the run's job
  const progress = document.getElementById("progress");
  if (!progress || !window.EventSource) return;
  const path = encodeURIComponent(progress.dataset.path);
  let source = null;

  function show(state) {
    document.getElementById("job-state").textContent = state.state;
    document.getElementById("job-code").textContent =
      state.returncode == null ? "" : "(exit " + state.returncode + ")";
    for (const s of state.steps) {
      const el = document.querySelector('#steps [data-step="' + s.name + '"]');
      if (!el) continue;
      el.className = "step " + s.state.replace(" ", "-");
      el.dataset.state = s.state;
      const done = s.state === "done" || s.state === "reused";
      const label = s.name + (done ? " ✓" : s.state === "running" ? " …" : "");
      if (done) {
        el.innerHTML = "";
        const a = document.createElement("a");
        a.href = "/miniscope/report?path=" + path + "&step=" + s.name;
        a.textContent = label;
        el.appendChild(a);
      } else {
        el.textContent = label;
      }
    }
    const log = document.getElementById("log-tail");
    if (state.log && state.log.length) {
      log.hidden = false;
      log.textContent = state.log.join("\n");
      log.scrollTop = log.scrollHeight;
    }
    document.getElementById("explorer-link").hidden = !state.explorable;
  }

  function listen() {
    if (source) source.close();
    source = new EventSource("/miniscope/run/events?path=" + path);
    source.addEventListener("progress", (e) => show(JSON.parse(e.data)));
    source.addEventListener("done", () => { source.close(); source = null; });
    source.onerror = () => { if (source) { source.close(); source = null; } };
  }

  document.body.addEventListener("run-started", listen);
  listen();
})();

// sprof serve: the Timeline tab (samples over time per thread, CPU use, resident memory on one
// time axis) and the time range it selects. The range lives in the page's URL as
// `#TAB&range=FROM-TO` (nanoseconds from the start of recording) and is sent to the server as
// `?from=&to=` on the views it cuts (CPU, inverted, callers/callees, top functions, threads).
"use strict";

(function () {
  const CUT = ["cpu", "inverted", "callers", "source", "top", "threads"];

  function parseHash(hash) {
    const parts = (hash || "").replace(/^#/, "").split("&");
    let range = null;
    for (const p of parts.slice(1)) {
      const m = /^range=(\d+)-(\d+)$/.exec(p);
      if (m && Number(m[2]) > Number(m[1])) range = { from: m[1], to: m[2] };
    }
    return { tab: parts[0], range };
  }

  const fmtSeconds = (ns) => {
    const s = Number(ns) / 1e9;
    return (s >= 10 ? s.toFixed(1) : s >= 1 ? s.toFixed(2) : s.toFixed(3)) + " s";
  };

  const SprofRange = {
    // Set by the job page: called after the range changed (redraws the shown tab).
    onchange: null,
    tabOf(hash) { return parseHash(hash).tab || "cpu"; },
    get() { return parseHash(location.hash).range; },
    // `&range=FROM-TO` for the URL, or "" without a range.
    hashSuffix() { const r = this.get(); return r ? `&range=${r.from}-${r.to}` : ""; },
    set(range) {
      // The fragment is transforms.js's permalink state: the range is one key of it, so the
      // transforms, zoom and search stay.
      const value = range ? `${Math.floor(range.from)}-${Math.floor(range.to)}` : "";
      const T = window.sprofTransforms;
      if (T) {
        T.state.range = value;
        T.write();
      } else {
        const h = "#" + this.tabOf(location.hash) + (value ? `&range=${value}` : "");
        history.replaceState(null, "", location.pathname + location.search + h);
      }
      this.showBar();
      if (this.onchange) this.onchange();
    },
    // A view's API path with the range as ?from=&to= when the view is one the range cuts.
    apply(path) {
      const r = this.get();
      const m = /\/view\/([a-z]+)/.exec(path);
      if (!r || !m || !CUT.includes(m[1])) return path;
      return path + (path.includes("?") ? "&" : "?") + `from=${r.from}&to=${r.to}`;
    },
    // The bar above the tabs that says a range is on, with a button to show everything again.
    showBar() {
      const bar = document.getElementById("range-bar");
      if (!bar) return;
      const r = this.get();
      bar.hidden = !r;
      if (!r) return;
      bar.querySelector("#range-text").textContent =
        `Time range ${fmtSeconds(r.from)} – ${fmtSeconds(r.to)} (${fmtSeconds(r.to - r.from)}): the CPU, inverted, callers/callees, source, top functions and threads views show only its samples.`;
    },
  };
  window.SprofRange = SprofRange;
  document.addEventListener("DOMContentLoaded", () => {
    const clear = document.getElementById("range-clear");
    if (clear) clear.addEventListener("click", () => SprofRange.set(null));
    SprofRange.showBar();
  });

  const NS = "http://www.w3.org/2000/svg";
  function svgEl(tag, attrs) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }

  // Draws `data` (view/timeline) into `holder`: a CPU-use graph, one track per thread, the
  // memory series, and a time axis, all on one x scale. Dragging across selects a range.
  function draw(holder, data) {
    const W = 1000, L = 190, R = 10, CPU_H = 70, TRACK = 20, MEM_H = 70, AXIS = 26, GAP = 8;
    const threads = data.threads.slice(0, 24);
    const hasMem = data.memory && data.memory.length > 0;
    const H = (data.cpu ? CPU_H + GAP : 0) + threads.length * TRACK + (hasMem ? GAP + MEM_H : 0) + AXIS;
    const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, class: "timeline-chart", id: "timeline-svg" });
    const duration = Math.max(1, data.duration + 1);
    const n = data.threads.length ? data.threads[0].counts.length : (data.cpu ? data.cpu.length : 1);
    const sx = (t) => L + (W - L - R) * t / duration;
    const bw = (W - L - R) * data.bucket / duration;
    const label = (y, text, cls) => { const t = svgEl("text", { x: L - 6, y, "text-anchor": "end", class: cls || "" }); t.textContent = window.sprofSafeText(text); svg.append(t); };
    let y = 0;
    if (data.cpu) {
      const maxCPU = Math.max(1, ...data.cpu);
      const pts = [`${L},${CPU_H}`];
      data.cpu.forEach((c, i) => { const x = sx(i * data.bucket); pts.push(`${x.toFixed(1)},${(CPU_H - (CPU_H - 4) * c / maxCPU).toFixed(1)}`, `${(x + bw).toFixed(1)},${(CPU_H - (CPU_H - 4) * c / maxCPU).toFixed(1)}`); });
      pts.push(`${sx(n * data.bucket).toFixed(1)},${CPU_H}`);
      svg.append(svgEl("polygon", { points: pts.join(" "), class: "cpu-use" }));
      svg.append(svgEl("line", { x1: L, y1: CPU_H, x2: W - R, y2: CPU_H, class: "axis" }));
      label(14, `CPU use (peak ${maxCPU.toFixed(2)} CPUs)`);
      y = CPU_H + GAP;
    }
    let maxCount = 1;
    for (const t of threads) for (const c of t.counts) if (c > maxCount) maxCount = c;
    threads.forEach((t) => {
      const g = svgEl("g", { class: "track", "data-tid": String(t.tid), "data-total": String(t.total) });
      g.append(svgEl("rect", { x: L, y: y + 1, width: W - L - R, height: TRACK - 2, class: "track-bg" }));
      t.counts.forEach((c, i) => {
        if (!c) return;
        const h = Math.max(1, (TRACK - 4) * c / maxCount);
        g.append(svgEl("rect", { x: sx(i * data.bucket).toFixed(1), y: (y + TRACK - 2 - h).toFixed(1), width: Math.max(0.8, bw).toFixed(2), height: h.toFixed(1), class: "track-bar" }));
      });
      svg.append(g);
      label(y + 14, `${t.name || "?"} (${t.tid}) ${t.total.toLocaleString("en-US")}`);
      y += TRACK;
    });
    if (hasMem) {
      y += GAP;
      let maxRSS = 1;
      for (const s of data.memory) for (const p of s.points) if (p[1] > maxRSS) maxRSS = p[1];
      const palette = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];
      data.memory.forEach((s, k) => {
        svg.append(svgEl("polyline", { class: "series", stroke: palette[k % palette.length],
          points: s.points.map(([t, v]) => `${sx(t).toFixed(1)},${(y + MEM_H - (MEM_H - 4) * v / maxRSS).toFixed(1)}`).join(" ") }));
      });
      svg.append(svgEl("line", { x1: L, y1: y + MEM_H, x2: W - R, y2: y + MEM_H, class: "axis" }));
      label(y + 14, `RSS (peak ${(maxRSS / 1048576).toFixed(1)} MB)`);
      y += MEM_H;
    }
    svg.append(svgEl("line", { x1: L, y1: y, x2: W - R, y2: y, class: "axis" }));
    for (let k = 0; k <= 5; k++) {
      const t = duration * k / 5;
      const tx = svgEl("text", { x: sx(t), y: y + 16, "text-anchor": k === 0 ? "start" : k === 5 ? "end" : "middle" });
      tx.textContent = fmtSeconds(t);
      svg.append(tx);
    }
    // The selection: a band over every row, drawn from the range in the URL.
    const band = svgEl("rect", { y: 0, height: y, class: "range-band", id: "timeline-band" });
    svg.append(band);
    function showBand() {
      const r = SprofRange.get();
      band.setAttribute("visibility", r ? "visible" : "hidden");
      if (r) { const a = sx(Number(r.from)), b = sx(Math.min(Number(r.to), duration)); band.setAttribute("x", a); band.setAttribute("width", Math.max(1, b - a)); }
    }
    showBand();
    const toTime = (clientX) => {
      const box = svg.getBoundingClientRect();
      const x = (clientX - box.left) * W / box.width;
      return Math.max(0, Math.min(duration, (x - L) / (W - L - R) * duration));
    };
    let start = null;
    svg.addEventListener("pointerdown", (e) => { start = toTime(e.clientX); svg.setPointerCapture(e.pointerId); e.preventDefault(); });
    svg.addEventListener("pointermove", (e) => {
      if (start == null) return;
      const t = toTime(e.clientX), a = Math.min(start, t), b = Math.max(start, t);
      band.setAttribute("visibility", "visible"); band.setAttribute("x", sx(a)); band.setAttribute("width", Math.max(1, sx(b) - sx(a)));
    });
    svg.addEventListener("pointerup", (e) => {
      if (start == null) return;
      const t = toTime(e.clientX), a = Math.min(start, t), b = Math.max(start, t);
      start = null;
      // A click (no drag) clears the range.
      SprofRange.set(sx(b) - sx(a) < 3 ? null : { from: a, to: b });
    });
    holder.append(svg);
    return svg;
  }

  // The Timeline tab. `ctx`: { api, base, el, message } from the job page.
  async function timelineTab(panel, ctx) {
    const data = await ctx.api("GET", `${ctx.base()}/view/timeline`);
    if (data.empty) return ctx.message(data.empty);
    panel.textContent = "";
    const r = SprofRange.get();
    panel.append(ctx.el("p", { class: "muted", id: "timeline-summary", "data-samples": String(data.samples), "data-duration": String(data.duration),
      text: `${data.samples.toLocaleString("en-US")} samples over ${fmtSeconds(data.duration)}, ${data.threads.length} thread${data.threads.length === 1 ? "" : "s"}` +
        (data.threads.length > 24 ? " (the 24 with the most samples shown)" : "") +
        ". Drag across to select a time range (every CPU view then shows only its samples); click to clear." }));
    const holder = ctx.el("div", { class: "timeline" });
    panel.append(holder);
    draw(holder, data);
    window.sprofTimeline = { data, range: r };
  }

  window.SprofTimeline = { tab: timelineTab, draw, fmtSeconds };
})();

// sprof serve: the heap part of the Memory tab, for jobs run with --heap. app.js's memoryTab calls
// window.sprofHeapSection(panel, ctx) with its helpers (api, el, table, newFlame, memoryChart) and
// the run's RSS series; everything comes from the heap views of the JSON API, names set as text.
"use strict";

(function () {
  const fmtBytes = (b) => window.sprofFormatBytes(b);  // flame.js
  const fmtInt = (n) => Math.round(n).toLocaleString("en-US");

  // The flame graphs drawn last, by view (tests and the console read their totals).
  window.sprofHeapFlames = {};

  window.sprofHeapSection = async function (panel, ctx) {
    const { job, base, api, el } = ctx;
    const section = el("div", { id: "heap-section" });
    panel.append(section);
    if (!(job.options && job.options.heap)) {
      section.append(el("p", { class: "muted", text: "Allocations were not recorded for this job: create it with Heap checked for allocation and in-use flame graphs and the leaks." }));
      return;
    }
    const summary = await api("GET", `${base}/view/heap`);
    if (summary.empty) {
      section.append(el("p", { class: "empty", text: summary.empty }));
      return;
    }
    section.append(el("h3", { text: "Heap" }));
    const sampling = summary.rate <= 1 ? "every allocation recorded" : `estimated from one sample per ${fmtBytes(summary.rate)} allocated on average`;
    section.append(el("p", { id: "heap-summary", class: "muted",
      text: `${fmtBytes(summary.alloc_space)} allocated in ${fmtInt(summary.alloc_objects)} objects; ${fmtBytes(summary.inuse_space)} in ${fmtInt(summary.inuse_objects)} objects still in use at the end (${sampling}).` }));

    if (summary.timeline.length > 0) {
      section.append(el("h4", { text: "Heap bytes in use over time, beside the resident memory (RSS)" }));
      const chart = ctx.memoryChart(ctx.rss.concat([{ pid: null, name: "heap in use (estimated)", points: summary.timeline }]));
      chart.id = "heap-chart";
      section.append(chart);
    }

    window.sprofHeapFlames = {};
    const graphs = [["heap-alloc", "Bytes allocated, by stack"], ["heap-inuse", "Bytes still in use at the end, by stack"]];
    for (const [view, title] of graphs) {
      section.append(el("h4", { text: title }));
      const tree = await api("GET", `${base}/view/${view}`);
      if (!tree.parent || tree.parent.length === 0) {
        section.append(el("p", { class: "empty", id: `${view}-empty`, text: view === "heap-alloc" ? "No allocation was sampled." : "Nothing sampled was still allocated at the end." }));
        continue;
      }
      const holder = el("div", { class: "flame", id: "flame-" + view });
      section.append(holder);
      window.sprofHeapFlames[view] = ctx.newFlame(holder, tree, {});
    }

    section.append(el("h4", { text: "Still allocated at the end (leaks, for a command that exited)" }));
    if (summary.leaks.length === 0) {
      section.append(el("p", { class: "empty", id: "leaks-empty", text: "Nothing sampled was still allocated at the end." }));
      return;
    }
    const rows = summary.leaks.map((l) => ({ function: l.function, bytes: l.bytes, objects: l.objects, stack: l.stack.slice(-6).join(";") }));
    const t = ctx.table([
      { key: "function", title: "Function", num: false },
      { key: "bytes", title: "Bytes", num: true, fmt: (v) => fmtBytes(v) },
      { key: "objects", title: "Objects", num: true, fmt: fmtInt },
      { key: "stack", title: "Stack (innermost last)", num: false },
    ], rows, true);
    t.id = "leaks-table";
    section.append(t);
  };
})();

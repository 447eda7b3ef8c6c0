// sprof serve: the Source tab, a function's source with the samples of each line (self: the
// line was the innermost frame; total: the line was anywhere on the stack), as `sprof annotate`
// prints it. Lines are set with textContent only.
"use strict";

(function () {
  // `ctx`: { api, base, el, message, noSamples, onPick, onShown } from the job page; `name`: the function.
  async function sourceTab(panel, ctx, name) {
    const el = ctx.el;
    const top = await ctx.api("GET", `${ctx.base()}/view/top`);
    if (top.length === 0) return ctx.noSamples("No samples were recorded in this run.");
    name = name || [...top].sort((a, b) => b.self - a.self)[0].name;
    // The function shown is the permalink's `fn` (a reload shows the same function).
    if (ctx.onShown) ctx.onShown(name);
    const input = el("input", { id: "source-fn", list: "source-names", value: name, size: 60 });
    const names = el("datalist", { id: "source-names" }, ...top.map((r) => el("option", { value: r.name })));
    input.addEventListener("change", () => ctx.onPick(input.value));
    let d;
    try {
      d = await ctx.api("GET", `${ctx.base()}/view/source?fn=${encodeURIComponent(name)}`);
    } catch (e) {
      panel.textContent = "";
      panel.append(el("p", {}, document.createTextNode("Function: "), input, names), el("p", { class: "error", text: String(e.message) }));
      return;
    }
    panel.textContent = "";
    const share = (v) => v ? `${v.toLocaleString("en-US")} (${(100 * v / Math.max(1, d.grand_total)).toFixed(2)}%)` : "";
    panel.append(el("p", {}, document.createTextNode("Function: "), input, names),
      el("p", { id: "source-summary", "data-self": String(d.self), "data-total": String(d.total),
        text: `self ${share(d.self) || 0}, total ${share(d.total) || 0} of ${d.grand_total.toLocaleString("en-US")} ${d.unit}. Self: the line was running; total: the line was on the stack.` }));
    if (d.changed) panel.append(el("p", { class: "error", text: d.changed }));
    for (const n of d.notices) panel.append(el("p", { class: "muted", text: n }));
    d.files.forEach((f, k) => {
      panel.append(el("h3", { text: (f.path || "(unknown file)") + (f.found ? "" : "  (source not found: line numbers only)") }));
      const t = el("table", { class: "grid source", id: `source-file-${k}` });
      t.append(el("thead", {}, el("tr", {}, el("th", { class: "num", text: "Self" }), el("th", { class: "num", text: "Total" }),
        el("th", { class: "num", text: "Line" }), el("th", { text: "Source" }))));
      const body = el("tbody");
      const hottest = Math.max(1, ...f.lines.map((l) => l.total));
      for (const l of f.lines) {
        const tr = el("tr", { "data-line": String(l.line), "data-self": String(l.self), "data-total": String(l.total) },
          el("td", { class: "num", text: share(l.self) }), el("td", { class: "num", text: share(l.total) }),
          el("td", { class: "num", text: l.line ? String(l.line) : "?" }),
          el("td", { class: "code", text: l.line ? (l.text == null ? "" : l.text) : "(no line information)" }));
        if (l.total) tr.style.background = `rgba(217, 83, 79, ${(0.08 + 0.5 * l.total / hottest).toFixed(3)})`;
        body.append(tr);
      }
      t.append(body);
      panel.append(t);
    });
    if (d.files.length === 0 && !d.changed) panel.append(el("p", { class: "muted", text: "No line information for this function (no debug info, or kernel code)." }));
  }

  window.SprofSource = { tab: sourceTab };
})();

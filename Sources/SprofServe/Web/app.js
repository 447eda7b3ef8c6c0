// sprof serve: the job list and the job page. Everything comes from the JSON API of the same
// server; every name is set with textContent (never innerHTML), so profiled names stay text.
"use strict";

(function () {
  // The token arrives once in the URL (?token=…); keep it for later requests and drop it from the
  // address bar, so that it is not bookmarked or shown.
  const params = new URLSearchParams(location.search);
  if (params.get("token")) {
    localStorage.setItem("sprof-token", params.get("token"));
    params.delete("token");
    history.replaceState(null, "", location.pathname + (params.toString() ? "?" + params : "") + location.hash);
  }
  const token = () => localStorage.getItem("sprof-token") || "";
  // For what cannot send a header (download links): the token as ?token=.
  const withToken = (path) => path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token());

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = window.sprofSafeText(v);
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  }

  async function api(method, path, body) {
    // Every API request carries the token, reads too: job data can hold secrets.
    const headers = { "Accept": "application/json", "Authorization": "Bearer " + token() };
    // Views and comparisons carry the transforms of the transform bar.
    path = window.sprofTransforms.decorate(path);
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method === "GET") path = window.SprofRange.apply(path);  // a time range cuts the CPU views
    const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    let data = null;
    try { data = await r.json(); } catch (_) { data = null; }
    if (!r.ok) throw failure(r, data);
    return data;
  }

  // The error of a refused request (`data`: its JSON body, if any); a 401 also shows the token
  // warning. Every request the page makes goes through here, the Compare upload's own too.
  function failure(r, data) {
    let msg = (data && data.error) || `${r.status} ${r.statusText}`;
    if (r.status === 401) {
      msg += " (the token changes each time sprof serve starts)";
      tokenWarning();
    }
    const err = new Error(msg);
    err.status = r.status;
    return err;
  }

  // A 401 on a page that had a valid token: the server restarted with a new token. Say so where
  // every page shows it, instead of polls failing in silence under a stale "done".
  function tokenWarning() {
    const w = document.getElementById("token-warning");
    if (!w || !w.hidden) return;
    w.textContent = "sprof serve was restarted (or its token changed): this page's token is refused. Open the URL with ?token=… that sprof serve printed.";
    w.hidden = false;
  }

  function showError(node, err) {
    node.textContent = err ? String(err.message || err) : "";
    node.hidden = !err;
  }

  function fmtTime(ms) {
    if (!ms) return "";
    const d = new Date(ms);
    const p = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  }
  function fmtDuration(job) {
    if (!job.started_ms) return "";
    const end = job.finished_ms || Date.now();
    return ((end - job.started_ms) / 1000).toFixed(1) + " s";
  }
  const fmtInt = (n) => n == null ? "" : Math.round(n).toLocaleString("en-US");
  const shellQuote = (a) => /^[\w@%+=:,./-]+$/.test(a) ? a : "'" + a.replace(/'/g, "'\\''") + "'";
  const commandText = (job) => job.command.map(shellQuote).join(" ");
  // The job's recording options as `sprof run` spells them; "defaults" when none was changed.
  function optionsText(job) {
    const o = job.options || {}, parts = [];
    if (o.event) parts.push("-e " + o.event);
    if (o.frequency != null) parts.push("-F " + o.frequency);
    if (o.period != null) parts.push("-c " + o.period);
    if (o.call_graph) parts.push("--call-graph " + o.call_graph);
    if (o.off_cpu) parts.push("--off-cpu");
    if (o.memory) parts.push("--memory");
    if (o.heap) parts.push("--heap");
    if ((o.repeat || 1) > 1) parts.push(`repeat ${o.repeat}`);
    return parts.length ? parts.join(" ") : "defaults";
  }
  // A finished repeat job has its runs merged (jobs/ID/profile.pb.gz): all of them, or those
  // recorded before a Stop (as sprof run -r N merges the runs before its Ctrl-C).
  const mergedRuns = (j) => ((j.options && j.options.repeat) || 1) > 1 && j.state === "done" && j.runs_done >= 1;
  const isFinal = (state) => ["done", "failed", "interrupted"].includes(state);

  function progressText(job) {
    const p = job.progress;
    if (!p || job.state !== "running") return "";
    const parts = [];
    if (p.run && job.options.repeat > 1) parts.push(`run ${p.run}/${job.options.repeat}`);
    if (p.elapsed_ns != null) parts.push(`${(p.elapsed_ns / 1e9).toFixed(1)} s`);
    if (p.samples != null) parts.push(`${fmtInt(p.samples)} samples`);
    if (p.lost != null) parts.push(`${fmtInt(p.lost)} lost`);
    if (p.processes != null) parts.push(`${p.processes} processes`);
    if (p.threads != null) parts.push(`${p.threads} threads`);
    if (p.peak_rss_bytes != null) parts.push(`peak RSS ${(p.peak_rss_bytes / 1048576).toFixed(1)} MB`);
    return parts.join(", ");
  }

  // Splits a command line as a POSIX shell would for words and quotes (no expansion).
  function splitCommand(s) {
    const out = []; let cur = ""; let has = false; let q = null;
    for (let i = 0; i < s.length; i++) {
      const ch = s[i];
      if (q === "'") { if (ch === "'") q = null; else cur += ch; continue; }
      if (q === '"') {
        if (ch === '"') q = null;
        else if (ch === "\\" && i + 1 < s.length && '"\\$`'.includes(s[i + 1])) cur += s[++i];
        else cur += ch;
        continue;
      }
      if (ch === "'" || ch === '"') { q = ch; has = true; }
      else if (ch === "\\" && i + 1 < s.length) { cur += s[++i]; has = true; }
      else if (/\s/.test(ch)) { if (has) out.push(cur); cur = ""; has = false; }
      else { cur += ch; has = true; }
    }
    if (q) throw new Error("unterminated quote in the command");
    if (has) out.push(cur);
    return out;
  }

  // ---------------------------------------------------------------- job list
  function listPage() {
    const form = document.getElementById("new-job");
    const formError = document.getElementById("form-error");
    const tbody = document.querySelector("#jobs tbody");
    const jobs = new Map();
    const selected = new Set();
    const bulk = document.getElementById("delete-selected");
    const listError = document.getElementById("list-error");

    // The rows stay from one poll to the next and only changed text is set again: a rebuilt
    // list lost a text selection (a command line being copied) and a click held on a checkbox.
    const rows = new Map();  // job id → tr
    const MAX_COMMAND = 300;  // characters shown of a command line; all of it in the link's title
    function row(job) {
      let tr = rows.get(job.id);
      if (!tr) {
        const link = el("a", { href: "/jobs/" + encodeURIComponent(job.id) });
        const box = el("input", { type: "checkbox", class: "pick", "aria-label": "select job " + job.id });
        box.addEventListener("change", () => { if (box.checked) selected.add(job.id); else selected.delete(job.id); updateBulk(); });
        tr = el("tr", { "data-id": job.id },
          el("td", {}, box), el("td", {}, el("span", { class: "state" })), el("td", { class: "cmd" }, link),
          el("td", { class: "opts" }), el("td"), el("td"), el("td", { class: "num" }));
        rows.set(job.id, tr);
      }
      const [box, state, cmd, opts, started, duration, samples] = tr.children;
      const set = (node, text) => { if (node.textContent !== text) node.textContent = text; };
      const full = window.sprofSafeText(commandText(job));
      const link = cmd.firstChild;
      set(link, full.length > MAX_COMMAND ? full.slice(0, MAX_COMMAND - 1) + "…" : full);
      if (full.length > MAX_COMMAND) { if (link.title !== full) link.title = full; } else link.removeAttribute("title");
      if (tr.dataset.state !== job.state) {
        tr.dataset.state = job.state;
        state.firstChild.className = "state " + job.state;
        state.firstChild.textContent = job.state;
      }
      box.firstChild.checked = selected.has(job.id);
      const notes = (job.notices || []).filter((n) => n.includes("falling back"));
      set(opts, optionsText(job) + (notes.length ? " (" + notes.join("; ") + ")" : ""));
      set(started, fmtTime(job.started_ms));
      set(duration, fmtDuration(job));
      set(samples, job.state === "running" ? fmtInt(job.progress && job.progress.samples) : fmtInt(job.samples));
      return tr;
    }
    function updateBulk() {
      for (const k of [...selected]) if (!jobs.has(k)) selected.delete(k);
      bulk.disabled = selected.size === 0;
      bulk.textContent = selected.size ? `Delete selected (${selected.size})` : "Delete selected";
    }
    function render() {
      const all = [...jobs.values()].sort((a, b) => b.created_ms - a.created_ms || (a.id < b.id ? 1 : -1));
      for (const [jid, tr] of rows) if (!jobs.has(jid)) { tr.remove(); rows.delete(jid); }
      // Moved only when out of place (a move would end a selection inside the row).
      let at = tbody.firstChild;
      for (const j of all) {
        const tr = row(j);
        if (tr === at) at = at.nextSibling;
        else tbody.insertBefore(tr, at);
      }
      document.getElementById("no-jobs").hidden = all.length > 0;
      updateBulk();
    }
    // Polling, not an event stream: a held stream per open page used up the browser's six
    // connections per host, and the seventh tab stayed blank.
    async function refresh() {
      try {
        const list = await api("GET", "/api/jobs");
        jobs.clear();
        for (const j of list) jobs.set(j.id, j);
        render();
        showError(listError, null);
      } catch (e) { showError(listError, e); }
      const busy = [...jobs.values()].some((j) => !isFinal(j.state));
      setTimeout(refresh, busy ? 1000 : 3000);
    }
    refresh();
    bulk.addEventListener("click", async () => {
      const ids = [...selected];
      if (!ids.length || !confirm(`Delete ${ids.length} job${ids.length > 1 ? "s" : ""} and their files?`)) return;
      showError(listError, null);
      for (const jid of ids) {
        try { await api("DELETE", `/api/jobs/${encodeURIComponent(jid)}`); jobs.delete(jid); selected.delete(jid); }
        catch (e) { if (e.status === 404) { jobs.delete(jid); selected.delete(jid); } else showError(listError, e); }
      }
      render();
    });

    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      showError(formError, null);
      try {
        const command = splitCommand(document.getElementById("f-command").value);
        const options = {};
        const v = (id) => document.getElementById(id).value.trim();
        if (v("f-event")) options.event = v("f-event");
        if (v("f-frequency")) options.frequency = Number(v("f-frequency"));
        if (v("f-period")) options.period = Number(v("f-period"));
        if (v("f-callgraph")) options.call_graph = v("f-callgraph");
        if (document.getElementById("f-offcpu").checked) options.off_cpu = true;
        if (document.getElementById("f-heap").checked) options.heap = true;
        if (v("f-repeat")) options.repeat = Number(v("f-repeat"));
        const job = await api("POST", "/api/jobs", { command, options });
        location.href = "/jobs/" + encodeURIComponent(job.id);
      } catch (err) { showError(formError, err); }
    });
  }

  // ---------------------------------------------------------------- job page
  function jobPage(id) {
    const outerPanel = document.getElementById("panel");
    const runSelect = document.getElementById("run-select");
    let runPicked = false;
    let calleesOf = null;  // the function the Callers/callees tab shows
    let picked = window.sprofTransforms.state.base || null;  // the Compare tab's base (the permalink's base=), kept when the tab is shown again
    const actionError = document.getElementById("action-error");
    let job = null;
    const transforms = window.sprofTransforms;  // transforms.js: the URL's state and the transform bar
    let tab = transforms.state.tab;
    transforms.onChange = () => showTab(tab);
    transforms.renderBar();
    let loadedFor = null;

    function setJob(j) {
      job = j;
      document.getElementById("job-command").textContent = window.sprofSafeText(commandText(j));
      document.getElementById("job-options").textContent = "Options: " + optionsText(j);
      document.getElementById("stop").hidden = j.state !== "running";
      const st = document.getElementById("job-state");
      st.textContent = j.state; st.className = "state " + j.state; st.dataset.state = j.state;
      document.getElementById("job-progress").textContent = progressText(j) ||
        (j.state === "done" ? `${fmtInt(j.samples)} samples, ${fmtInt(j.lost)} lost, ${fmtDuration(j)}` : "");
      const err = document.getElementById("job-error");
      err.textContent = j.error || ""; err.hidden = !j.error;
      const notes = document.getElementById("job-notices");
      notes.textContent = "";
      for (const n of j.notices || []) notes.append(el("li", { text: n }));
      const runs = Math.max(1, j.runs_done);
      if (runSelect.options.length !== runs) {
        // The newest run, unless the user (or the permalink's run=) picked one.
        const keep = runPicked ? runSelect.value : transforms.state.run;
        runSelect.textContent = "";
        for (let r = 1; r <= runs; r++) runSelect.append(el("option", { value: String(r), text: `${r} of ${j.options.repeat || 1}` }));
        if (keep && Number(keep) >= 1 && Number(keep) <= runs) { runPicked = true; runSelect.value = keep; }
        else runSelect.value = String(runs);
      }
      // Shown again when the state or the number of finished runs changes (run 1 of a repeat
      // job ending makes the views appear while run 2 records), not for progress.
      const key = j.state + ":" + j.runs_done;
      if (loadedFor !== key) { loadedFor = key; showTab(tab); }
    }

    function setDeleted() {
      const st = document.getElementById("job-state");
      st.textContent = "deleted"; st.className = "state failed"; st.dataset.state = "deleted";
      document.getElementById("job-progress").textContent = "";
      const err = document.getElementById("job-error");
      err.textContent = "This job was deleted (on another page or by another client): its data is gone."; err.hidden = false;
      for (const b of ["stop", "rerun", "delete"]) document.getElementById(b).disabled = true;
      job = null;
    }

    function base() { return `/api/jobs/${encodeURIComponent(id)}/runs/${runSelect.value || 1}`; }

    // Each showing of a tab renders into a fresh element of its own: a slow earlier render
    // that finishes late writes into its detached element, never over the tab now shown.
    function renderTab(name, panel) {
      function message(text) { panel.textContent = ""; panel.append(el("p", { class: "empty", text })); }

      // A view with no sample. With transforms or a time range on, they removed every sample
      // (`plain`, the run's own reason, would be wrong): say so and offer to remove them.
      function noSamples(plain) {
        const tf = transforms.state.tf.length, range = window.SprofRange.get();
        if (!tf && !range) return message(plain);
        const what = [tf ? (tf > 1 ? "the transforms" : "the transform") : "", range ? "the time range" : ""].filter((s) => s).join(" and ");
        panel.textContent = "";
        const p = el("p", { class: "empty", id: "filtered-empty",
          text: `No sample is left: ${what} removed every sample of this run from this view. ` });
        if (tf) p.append(el("button", { id: "empty-remove-transforms", text: tf > 1 ? "Remove the transforms" : "Remove the transform",
          onclick: () => { transforms.state.tf = []; transforms.state.zoom = ""; transforms.changed(); } }), document.createTextNode(" "));
        if (range) p.append(el("button", { id: "empty-clear-range", text: "Show the whole time range", onclick: () => window.SprofRange.set(null) }));
        panel.append(p);
      }

      function needsProfile() {
        if (!job) return "loading…";
        if (job.state === "queued") return "The job is queued: its views appear when it has run.";
        if (job.state === "running" && job.runs_done === 0) return "The job is running: its views appear when the first run ends.";
        if (job.runs_done === 0) return `This job has no profile: ${job.error || "it ended before sprof wrote one"}.`;
        return null;
      }

      async function flameTab(view, extra) {
        const why = needsProfile();
        if (why) return message(why);
        message("loading…");
        const url = `${base()}/view/${view}${extra || ""}`;
        const data = await api("GET", url);
        if (data.empty) return message(data.empty);
        if (!data.parent || data.parent.length === 0) return noSamples("No samples were recorded in this run, so there is nothing to draw.");
        panel.textContent = "";
        const holder = el("div", { class: "flame", id: "flame-" + view });
        panel.append(holder);
        window.sprofFlame = newFlame(holder, data, {}, url);
      }

      function table(columns, rows, sortable) {
        const t = el("table", { class: "grid" + (sortable ? " sortable" : "") });
        const head = el("tr");
        const body = el("tbody");
        let sortKey = null, desc = true, filling = 0;
        // The first rows (a screenful and more) at once, the rest in chunks when the page is idle:
        // 500 rows of DOM were most of a table's time from the click.
        const FIRST = 100, CHUNK = 200;
        const idle = window.requestIdleCallback || ((f) => setTimeout(f, 0));
        function fill() {
          body.textContent = "";
          const sorted = sortKey == null ? rows : [...rows].sort((a, b) => {
            const x = a[sortKey], y = b[sortKey];
            const c = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
            return desc ? -c : c;
          });
          const run = ++filling;
          const add = (from, to) => {
            const part = document.createDocumentFragment();
            for (const r of sorted.slice(from, to)) part.append(el("tr", {}, ...columns.map((c) => el("td", { class: c.num ? "num" : "", text: c.fmt ? c.fmt(r[c.key], r) : String(r[c.key]) }))));
            body.append(part);
            if (to < sorted.length) idle(() => { if (run === filling) add(to, to + CHUNK); });
            else body.removeAttribute("data-filling");
          };
          body.setAttribute("data-filling", "");
          add(0, FIRST);
        }
        for (const c of columns) {
          const th = el("th", { text: c.title, "data-key": c.key });
          if (sortable) th.addEventListener("click", () => {
            desc = sortKey === c.key ? !desc : c.num !== false;
            sortKey = c.key;
            for (const h of head.children) h.removeAttribute("data-sort");
            th.setAttribute("data-sort", desc ? "desc" : "asc");
            fill();
          });
          head.append(th);
        }
        t.append(el("thead", {}, head), body);
        fill();
        return t;
      }
      const pct = (v) => v.toFixed(2) + "%";

      async function memoryTab() {
        const why = needsProfile();
        if (why) return message(why);
        const data = await api("GET", `${base()}/view/memory`);
        panel.textContent = "";
        if (data.empty) {
          panel.append(el("p", { class: "empty", text: data.empty }));
        } else {
          panel.append(memoryChart(data));
          const files = await api("GET", `${base()}/files`);
          if (files.includes("profile.memory.tsv")) {
            panel.append(el("p", {}, el("a", { id: "memory-download", href: withToken(`${base()}/files/profile.memory.tsv`),
              download: "profile.memory.tsv", text: "Download the memory timeline (TSV)" })));
          }
        }
        // The heap part (jobs run with --heap): Web/memory.js.
        await window.sprofHeapSection(panel, { job, base: base(), api, el, table, newFlame, memoryChart, rss: data.empty ? [] : data });
        if (job.options.event && job.options.event.startsWith("page-faults")) {
          panel.append(el("h3", { text: "Page-fault flame graph" }));
          const holder = el("div", { class: "flame" });
          panel.append(holder);
          const tree = await api("GET", `${base()}/view/cpu`);
          window.sprofFlame = newFlame(holder, tree, {}, `${base()}/view/cpu`);
        } else {
          panel.append(el("p", { class: "muted", text: "Page faults were not sampled for this job: run it with the event page-faults for a page-fault flame graph." }));
        }
      }

      function memoryChart(series) {
        const NS = "http://www.w3.org/2000/svg";
        const W = 900, H = 320, L = 60, B = 36, T = 12, R = 12;
        const svg = document.createElementNS(NS, "svg");
        svg.setAttribute("viewBox", `0 0 ${W} ${H}`); svg.setAttribute("class", "memory-chart");
        let tMax = 0, yMax = 0;
        for (const s of series) for (const [t, rss] of s.points) { tMax = Math.max(tMax, t); yMax = Math.max(yMax, rss); }
        tMax = Math.max(tMax, 1); yMax = Math.max(yMax, 1);
        const sx = (t) => L + (W - L - R) * t / tMax, sy = (v) => H - B - (H - B - T) * v / yMax;
        const line = (x1, y1, x2, y2, cls) => { const l = document.createElementNS(NS, "line"); Object.entries({ x1, y1, x2, y2, class: cls }).forEach(([k, v]) => l.setAttribute(k, v)); svg.append(l); };
        const text = (x, y, s, anchor) => { const t = document.createElementNS(NS, "text"); t.setAttribute("x", x); t.setAttribute("y", y); t.setAttribute("text-anchor", anchor || "middle"); t.textContent = s; svg.append(t); };
        line(L, H - B, W - R, H - B, "axis"); line(L, T, L, H - B, "axis");
        for (let k = 0; k <= 5; k++) {
          const t = tMax * k / 5, v = yMax * k / 5;
          text(sx(t), H - B + 16, (t / 1e9).toFixed(2) + " s");
          text(L - 6, sy(v) + 4, (v / 1048576).toFixed(1) + " MB", "end");
          line(L, sy(v), W - R, sy(v), "gridline");
        }
        text((W + L) / 2, H - 4, "time since start");
        const palette = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
        series.forEach((s, k) => {
          const p = document.createElementNS(NS, "polyline");
          p.setAttribute("points", s.points.map(([t, v]) => `${sx(t).toFixed(1)},${sy(v).toFixed(1)}`).join(" "));
          p.setAttribute("class", "series"); p.setAttribute("stroke", palette[k % palette.length]);
          svg.append(p);
        });
        const legend = el("ul", { class: "legend" });
        series.forEach((s, k) => {
          const peak = Math.max(...s.points.map((p) => p[1]));
          const swatch = el("span", { class: "swatch" });
          swatch.style.background = palette[k % palette.length];
          legend.append(el("li", {}, swatch,
            document.createTextNode(`${s.name}${s.pid == null ? "" : ` (pid ${s.pid})`}: peak ${(peak / 1048576).toFixed(1)} MB`)));
        });
        return el("div", { class: "memory" }, svg, legend);
      }

      async function topTab() {
        const why = needsProfile();
        if (why) return message(why);
        const rows = await api("GET", `${base()}/view/top`);
        panel.textContent = "";
        if (rows.length === 0) return noSamples("No samples were recorded in this run.");
        panel.append(el("p", { class: "muted", text: "Click a column to sort. Self: samples in the function itself; total: samples with the function anywhere on the stack." }));
        panel.append(table([
          { key: "self", title: "Self", num: true, fmt: fmtInt }, { key: "self_percent", title: "Self %", num: true, fmt: pct },
          { key: "total", title: "Total", num: true, fmt: fmtInt }, { key: "total_percent", title: "Total %", num: true, fmt: pct },
          { key: "name", title: "Function", num: false }], rows, true));
        panel.querySelector("table").id = "top-table";
        // A row opens its function's callers and callees.
        panel.querySelector("tbody").addEventListener("click", (e) => {
          const tr = e.target.closest("tr");
          if (!tr) return;
          const shown = tr.lastChild.textContent;
          const row = rows.find((r) => window.sprofSafeText(r.name) === shown);
          if (row) { calleesOf = row.name; showTab("callers"); }
        });
      }

      async function threadsTab() {
        const why = needsProfile();
        if (why) return message(why);
        const rows = await api("GET", `${base()}/view/threads`);
        panel.textContent = "";
        if (rows.empty) return noSamples(rows.empty);
        panel.append(el("p", { class: "muted", text: "Click a thread for its own flame graph." }));
        const t = table([{ key: "process", title: "Process", num: false }, { key: "name", title: "Thread", num: false },
          { key: "tid", title: "TID", num: true }, { key: "value", title: "Samples", num: true, fmt: fmtInt },
          { key: "percent", title: "%", num: true, fmt: pct }], rows, true);
        t.id = "threads-table";
        const holder = el("div", { class: "flame", id: "thread-flame" });
        panel.append(t, holder);
        t.querySelector("tbody").addEventListener("click", async (e) => {
          const tr = e.target.closest("tr");
          if (!tr) return;
          const idx = [...tr.parentNode.children].indexOf(tr);
          const sortedRows = [...tr.parentNode.children].map((r) => r.children[2].textContent);
          const row = rows.find((r) => String(r.tid) === sortedRows[idx] && window.sprofSafeText(r.name) === tr.children[1].textContent);
          if (!row) return;
          const url = `${base()}/view/cpu?thread=${row.index}`;
          const data = await api("GET", url);
          holder.textContent = "";
          holder.append(el("h3", { text: `${row.name} (tid ${row.tid})` }), transforms.threadButtons(row));
          const inner = el("div");
          holder.append(inner);
          window.sprofFlame = newFlame(inner, data, {}, url);
        });
      }

      async function systemTab() {
        // "loading…" stays while the run's profile is read for its provenance.
        let info = null;
        try { info = await api("GET", `/api/jobs/${encodeURIComponent(id)}/system`); } catch (e) { return message(String(e.message)); }
        panel.textContent = "";
        const rows = [
          ["Kernel", info.kernel_release], ["CPU", info.cpu_model], ["Cores", String(info.cores)],
          ["Memory", (info.memory_bytes / 1073741824).toFixed(1) + " GiB"], ["sprof", info.sprof_version],
          ["perf_event_paranoid", info.perf_event_paranoid == null ? "unknown" : String(info.perf_event_paranoid)],
          ["Hardware PMU", info.hardware_pmu ? "yes" : "no (software events only, e.g. cpu-clock)"]];
        const t = el("table", { class: "grid kv", id: "system-table" });
        for (const [k, v] of rows) t.append(el("tr", {}, el("th", { text: k }), el("td", { text: v })));
        panel.append(t);
        if (job && job.runs_done > 0) {
          try {
            const prov = await api("GET", `${base()}/view/provenance`);
            if (prov.lines) panel.append(el("h3", { text: "Provenance" }), el("pre", { text: prov.lines }));
          } catch (_) { /* the run has no profile */ }
        }
      }

      async function compareTab() {
        const why = needsProfile();
        if (why) return message(why);
        // Every finished run of every job is a possible base, this job's other runs included; a
        // finished repeat job's runs also merged (tested like sprof diff); and uploaded files.
        const choices = [];
        for (const j of await api("GET", "/api/jobs")) {
          const runs = (j.options && j.options.repeat) || 1;
          const when = fmtTime(j.started_ms), what = [commandText(j), `[${optionsText(j)}]`];
          if (mergedRuns(j)) {
            const which = j.runs_done === runs ? `all ${runs} runs` : `all runs (${j.runs_done} of ${runs} runs, stopped)`;
            choices.push(el("option", { value: `${j.id}:all`, text: [when, j.id === id ? `this job, ${which}` : which, ...what].join("  ") }));
          }
          for (let r = j.runs_done; r >= 1; r--) {
            if (j.id === id && String(r) === (runSelect.value || "1")) continue;
            const which = j.id === id ? `this job, run ${r} of ${runs}` : runs > 1 ? `run ${r} of ${runs}` : "";
            choices.push(el("option", { value: `${j.id}:${r}`, text: [when, which, ...what].filter((s) => s).join("  ") }));
          }
        }
        for (const u of await api("GET", "/api/uploads")) {
          choices.push(el("option", { value: `upload:${u.id}`, text: `uploaded ${fmtTime(u.created_ms)}  ${u.name}  (${u.format}, ${fmtInt(u.samples)} samples)` }));
        }
        panel.textContent = "";
        const file = el("input", { type: "file", id: "compare-upload" });
        const upErr = el("p", { id: "compare-upload-error", class: "error", hidden: "" });
        panel.append(el("p", {}, document.createTextNode("Compare with a pprof or folded file: "), file), upErr);
        file.addEventListener("change", async () => {
          const f = file.files[0];
          if (!f) return;
          showError(upErr, null);
          try {
            const r = await fetch(`/api/uploads?name=${encodeURIComponent(f.name)}`, { method: "POST", body: f,
              headers: { "Authorization": "Bearer " + token(), "Content-Type": "application/octet-stream" } });
            const d = await r.json().catch(() => null);
            if (!r.ok) throw failure(r, d);
            picked = `upload:${d.id}`;
            showTab("compare");
          } catch (e) { showError(upErr, e); }
        });
        if (choices.length === 0) return panel.append(el("p", { class: "empty", text: "There is nothing to compare with yet: run another job, or this one with repeat 2 or more, or upload a profile." }));
        const select = el("select", { id: "compare-base" }, el("option", { value: "", text: "choose a base…" }), ...choices);
        const repeat = mergedRuns(job);
        const all = el("input", { type: "checkbox", id: "compare-all" });
        const out = el("div", { id: "compare-out" });
        // An uploaded base can be deleted from here (jobs are deleted from their own page).
        const drop = el("button", { id: "compare-delete-upload", text: "Delete this upload", hidden: "" });
        drop.addEventListener("click", async () => {
          const uid = select.value.slice("upload:".length);
          try {
            await api("DELETE", `/api/uploads/${encodeURIComponent(uid)}`);
            picked = "";
            transforms.set("base", "");
            showTab("compare");
          } catch (e) { out.textContent = String(e.message); }
        });
        select.addEventListener("change", () => { drop.hidden = !select.value.startsWith("upload:"); });
        panel.append(el("p", {}, document.createTextNode("Base: "), select, drop,
          repeat ? el("label", {}, all, document.createTextNode(job.runs_done === job.options.repeat ? ` this side: all ${job.options.repeat} runs of this job`
            : ` this side: all runs of this job (${job.runs_done} of ${job.options.repeat} runs, stopped)`)) : "",
          el("span", { class: "muted", text: "  widths from this side; red: self share grew, blue: shrank (base scaled to this side's total)" })), out);
        async function show() {
          if (!select.value) return;
          picked = select.value;
          transforms.set("base", picked);
          out.textContent = "loading…";
          try {
            const [kind, rest] = [select.value.slice(0, select.value.indexOf(":")), select.value.slice(select.value.indexOf(":") + 1)];
            const q = kind === "upload" ? `base_upload=${encodeURIComponent(rest)}` : `base=${encodeURIComponent(kind)}&base_run=${encodeURIComponent(rest)}`;
            const url = `${base()}/compare?${q}${all.checked ? "&all=1" : ""}`;
            const data = await api("GET", url);
            out.textContent = "";
            const holder = el("div", { class: "flame", id: "flame-diff" });
            out.append(holder);
            window.sprofFlame = newFlame(holder, data.flame, { diff: true }, url);
            out.append(el("h3", { text: "Largest changes of self and total share (percentage points)" }));
            const signed = (v) => (v >= 0 ? "+" : "") + v.toFixed(2);
            const cols = [{ key: "name", title: "Function", num: false },
              { key: "base_self", title: "Base self %", num: true, fmt: pct }, { key: "new_self", title: "New self %", num: true, fmt: pct },
              { key: "delta_self", title: "Δ self", num: true, fmt: signed },
              { key: "base_total", title: "Base total %", num: true, fmt: pct }, { key: "new_total", title: "New total %", num: true, fmt: pct },
              { key: "delta_total", title: "Δ total", num: true, fmt: signed }];
            if (data.tested) {
              const qf = (v) => v == null ? "" : v < 0.001 ? v.toExponential(1) : v.toFixed(3);
              cols.push({ key: "q_self", title: "q self", num: true, fmt: qf }, { key: "q_total", title: "q total", num: true, fmt: qf },
                { key: "significant", title: "Significant", num: false, fmt: (v) => v ? "yes" : "" });
              out.append(el("p", { id: "compare-tested", class: "muted", text: `${data.base_runs} base runs, ${data.new_runs} new runs: shares are per-run means; each change tested as sprof diff does (Welch's t-test, Mann–Whitney where far from normal), q-values by Benjamini–Hochberg; significant when q ≤ ${data.alpha}.` }));
            } else if (data.base_runs >= 2 || data.new_runs >= 2) {
              out.append(el("p", { class: "muted", text: "Significance needs repeated runs on both sides: choose all runs of a repeat job on each side." }));
            }
            const t = table(cols, data.table, true);
            t.id = "diff-table";
            out.append(t);
          } catch (e) { out.textContent = String(e.message); }
        }
        select.addEventListener("change", show);
        all.addEventListener("change", show);
        if (picked && choices.some((o) => o.value === picked)) {
          select.value = picked;
          drop.hidden = !picked.startsWith("upload:");
          show();
        }
      }

      // pprof's peek, the Firefox Profiler's butterfly: who calls a function, what it calls.
      async function callersTab() {
        const why = needsProfile();
        if (why) return message(why);
        const top = await api("GET", `${base()}/view/top`);
        if (top.length === 0) return noSamples("No samples were recorded in this run.");
        const name = calleesOf || transforms.state.fn || [...top].sort((a, b) => b.total - a.total || b.self - a.self)[0].name;
        transforms.set("fn", name);
        const d = await api("GET", `${base()}/view/callers?fn=${encodeURIComponent(name)}`);
        panel.textContent = "";
        const input = el("input", { id: "callers-fn", list: "callers-names", value: name, size: 60 });
        const names = el("datalist", { id: "callers-names" }, ...top.map((r) => el("option", { value: r.name })));
        input.addEventListener("change", () => { calleesOf = input.value; showTab("callers"); });
        const share = (v) => `${fmtInt(v)} (${(100 * v / Math.max(1, d.grand_total)).toFixed(2)}%)`;
        panel.append(el("p", {}, document.createTextNode("Function: "), input, names, transforms.functionButtons(name)),
          el("p", {}, el("button", { id: "callers-source", onclick: () => { calleesOf = name; showTab("source"); }, text: "Source of this function" })),
          el("p", { id: "callers-summary", "data-self": String(d.self), "data-total": String(d.total),
            text: `self ${share(d.self)}, total ${share(d.total)} of ${fmtInt(d.grand_total)} ${d.unit}. Click a row to follow it.` }));
        function list(id, title, rows, withSelf) {
          const cols = [{ key: "total", title: "Total", num: true, fmt: share }];
          if (withSelf) cols.push({ key: "self", title: "Self (as the leaf)", num: true, fmt: share });
          cols.push({ key: "name", title: "Function", num: false });
          const t = table(cols, rows, true);
          t.id = id;
          t.querySelector("tbody").addEventListener("click", (e) => {
            const tr = e.target.closest("tr");
            const row = tr && rows.find((r) => window.sprofSafeText(r.name) === tr.lastChild.textContent);
            if (row) { calleesOf = row.name; showTab("callers"); }
          });
          panel.append(el("h3", { text: title }), rows.length ? t : el("p", { class: "muted", text: "none" }));
        }
        list("callers-table", "Callers (who calls it)", d.callers, false);
        list("callees-table", "Callees (what it calls)", d.callees, true);
      }

      async function filesTab() {
        const why = needsProfile();
        if (why) return message(why);
        const files = await api("GET", `${base()}/files`);
        panel.textContent = "";
        const labels = { "profile.pb.gz": "pprof (go tool pprof, Pyroscope, Parca)", "profile.folded": "folded stacks (flamegraph.pl, inferno, speedscope)",
          "profile.svg": "SVG flame graph", "output.log": "the command's output and sprof's messages",
          "profile.memory.tsv": "the memory timeline (time, pid, RSS) as tab-separated values",
          "profile.runs.pb.gz": "all runs of this repeat job in one pprof (samples labelled run), for sprof diff" };
        const ul = el("ul", { id: "downloads" });
        for (const f of files) {
          const label = labels[f] || (f.endsWith(".speedscope.json") ? "speedscope" : f.endsWith(".svg") ? "SVG flame graph" : "");
          ul.append(el("li", {}, el("a", { href: withToken(`${base()}/files/${encodeURIComponent(f)}`), download: f, text: f }),
            document.createTextNode(label ? "  " + label : "")));
        }
        panel.append(ul);
        if (!files.includes("profile.pb.gz")) panel.append(el("p", { class: "muted", text: "No pprof file: this sprof writes folded stacks and SVG only." }));
        if (!files.some((f) => f.endsWith("speedscope.json"))) panel.append(el("p", { class: "muted", text: "No speedscope file in this run (speedscope also opens profile.folded directly)." }));
      }

      message("loading…");
      const run = {
        cpu: () => flameTab("cpu"), inverted: () => flameTab("inverted"), callers: callersTab,
        source: () => { const why = needsProfile(); return why ? message(why) : window.SprofSource.tab(panel, { api, base, el, message, noSamples,
          onPick: (n) => { calleesOf = n; showTab("source"); }, onShown: (n) => transforms.set("fn", n) }, calleesOf || transforms.state.fn); },
        timeline: () => { const why = needsProfile(); return why ? message(why) : window.SprofTimeline.tab(panel, { api, base, el, message }); }, memory: memoryTab,
        top: topTab, threads: threadsTab, system: systemTab, compare: compareTab, files: filesTab,
      }[name] || (() => flameTab(sampleTypeTab(name) ? name : "cpu"));
      run().catch((e) => message(String(e.message || e)));
    }

    // The tabs of sample types with a view of their own (Wall, Off-CPU): the server's page marks
    // them (data-sample-type), and view/NAME draws them.
    function sampleTypeTab(name) {
      const b = document.querySelector(`#tabs button[data-tab="${CSS.escape(name)}"]`);
      return Boolean(b && b.dataset.sampleType);
    }

    function showTab(name, push) {
      if (!document.querySelector(`#tabs button[data-tab="${CSS.escape(name)}"]`)) name = "cpu";
      tab = name;
      for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === name);
      transforms.setTab(name, push);
      outerPanel.dataset.tab = name;
      const inner = el("div", { class: "tab-body" });
      outerPanel.replaceChildren(inner);
      renderTab(name, inner);
    }

    for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab, true));
    // A tab named in the URL by hand (or by the back button) is shown.
    const reread = () => {
      window.SprofRange.showBar();
      if (!transforms.reread()) return;
      calleesOf = null;  // the URL's fn
      if (transforms.state.run && runSelect.querySelector(`option[value="${CSS.escape(transforms.state.run)}"]`)) runSelect.value = transforms.state.run;
      picked = transforms.state.base || null;
      showTab(transforms.state.tab);
    };
    window.addEventListener("hashchange", reread);
    window.addEventListener("popstate", reread);
    window.SprofRange.onchange = () => showTab(tab);
    document.getElementById("stop").addEventListener("click", async () => {
      showError(actionError, null);
      try { setJob(await api("POST", `/api/jobs/${encodeURIComponent(id)}/stop`)); }
      catch (e) { showError(actionError, e); }
    });
    runSelect.addEventListener("change", () => { runPicked = true; transforms.set("run", runSelect.value); showTab(tab); });
    document.getElementById("rerun").addEventListener("click", async () => {
      showError(actionError, null);
      try { const j = await api("POST", `/api/jobs/${encodeURIComponent(id)}/rerun`); location.href = "/jobs/" + encodeURIComponent(j.id); }
      catch (e) { showError(actionError, e); }
    });
    document.getElementById("delete").addEventListener("click", async () => {
      showError(actionError, null);
      if (!confirm("Delete this job and its files?")) return;
      try { await api("DELETE", `/api/jobs/${encodeURIComponent(id)}`); location.href = "/"; }
      catch (e) { showError(actionError, e); }
    });

    // Live updates by polling (no connection held open: see the list page). A finished job is
    // still watched, slowly: it can be deleted elsewhere, and the profile of a recording that
    // outlived a crashed server appears later (the server picks it up).
    async function poll() {
      let delay = 500;
      try {
        const j = await api("GET", `/api/jobs/${encodeURIComponent(id)}`);
        setJob(j);
        if (isFinal(j.state)) delay = 3000;
      } catch (e) {
        if (e.status === 404) return setDeleted();
        delay = 2000;
      }
      setTimeout(poll, delay);
    }
    poll();
  }

  // A flame graph; the last one drawn in a shown tab is window.sprofFlame (tests and the console use it).
  // `url`: where the tree came from, asked again for a zoomed frame's subtree and a search's
  // matched share when the server left narrow frames out.
  function newFlame(holder, data, opts, url) {
    if (url) opts.fetch = (query) => api("GET", url + (url.includes("?") ? "&" : "?") + query);
    const f = new window.SprofFlameGraph(holder, data, opts);
    if (!holder.isConnected) return window.sprofFlame;
    if (window.sprofTransforms) window.sprofTransforms.attach(f, holder);
    return f;
  }

  const page = document.body.dataset.page;
  if (page === "list") listPage();
  else if (page === "job") jobPage(document.body.dataset.job);
})();

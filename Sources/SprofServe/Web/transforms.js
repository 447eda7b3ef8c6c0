// sprof serve: transforms and permalinks of the job page.
//
// The view's state lives in the URL's fragment:
// `#TAB&tf=KIND:ARG&tf=…&zoom=A;B;C&q=REGEX&fn=NAME&range=FROM-TO&run=N&base=JOB:RUN`
// (the time range is timeline.js's; run: the run of a repeat job; base: the Compare tab's base,
// JOB:N, JOB:all or upload:ID),
// so a reload or a shared URL shows the same view. Transforms (focus:F, subtree:A;B;C, ignore:F,
// merge:F, rec:F, tid:N, pid:N, as `sprof report --transform`) are applied by the server, in
// order, before every view: each view request carries them as `tf=` query parameters. Names are
// set with textContent only.
"use strict";

(function () {
  const KINDS = {
    focus: "Focus on function", subtree: "Focus on subtree", ignore: "Drop samples with", merge: "Merge",
    rec: "Collapse recursion of", tid: "Only thread", pid: "Only process",
  };
  // The flame graphs' kind suffixes: transforms name functions as `sprof report` does.
  const plain = (name) => name.replace(/_\[[kij]\]$/, "");
  // A path of frames (subtree:, zoom=): names joined by `;`, each `\` and `;` in a name escaped
  // with `\` (Rust's `[u8; 32]`, C++ templates), as StackTransform.joinedPath on the server. A `\`
  // before anything else is kept, so links from before the escapes read as they did.
  const joinPath = (names) => names.map((n) => n.replace(/[\\;]/g, "\\$&")).join(";");
  function splitPath(text) {
    const names = [];
    let name = "";
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (c === "\\" && (text[i + 1] === "\\" || text[i + 1] === ";")) name += text[++i];
      else if (c === ";") { names.push(name); name = ""; } else name += c;
    }
    names.push(name);
    return names;
  }

  function parse(hash) {
    const parts = hash.replace(/^#/, "").split("&");
    const st = { tab: decodeURIComponent(parts[0] || "") || "cpu", tf: [], zoom: "", q: "", fn: "", range: "", run: "", base: "" };
    for (const p of parts.slice(1)) {
      const eq = p.indexOf("=");
      if (eq < 0) continue;
      const k = p.slice(0, eq), v = decodeURIComponent(p.slice(eq + 1).replace(/\+/g, " "));
      if (k === "tf") st.tf.push(v);
      else if (k in st) st[k] = v;
    }
    return st;
  }

  function format(st) {
    const enc = (v) => encodeURIComponent(v);
    let h = "#" + enc(st.tab);
    for (const t of st.tf) h += "&tf=" + enc(t);
    for (const k of ["zoom", "q", "fn", "range", "run", "base"]) if (st[k]) h += `&${k}=` + enc(st[k]);
    return h;
  }

  const T = {
    state: parse(location.hash),
    onChange: null,  // set by the job page: shows the current tab again
    bar: null,

    write() {
      const h = format(this.state);
      if (location.hash !== h) history.replaceState(null, "", location.pathname + location.search + h);
    },

    // A new tab: its own zoom; transforms, search and function stay. `push`: a tab clicked
    // gets a history entry of its own, so that Back returns to the tab before.
    setTab(name, push) {
      const before = location.hash;
      if (this.state.tab !== name) this.state.zoom = "";
      this.state.tab = name;
      const h = format(this.state);
      if (push && before !== h) history.pushState(null, "", location.pathname + location.search + h);
      else this.write();
    },

    set(key, value) { this.state[key] = value; this.write(); },

    // The fragment changed by hand or by the back button: true when the view must be shown again.
    reread() {
      const old = format(this.state);
      this.state = parse(location.hash);
      this.renderBar();
      return format(this.state) !== old;
    },

    add(text) {
      this.state.tf.push(text);
      this.state.zoom = "";
      this.changed();
    },

    remove(index) {
      this.state.tf.splice(index, 1);
      this.state.zoom = "";
      this.changed();
    },

    changed() {
      this.write();
      this.renderBar();
      if (this.onChange) this.onChange();
    },

    // `path` with the transforms as `tf=` parameters (view and compare requests only).
    decorate(path) {
      if (!this.state.tf.length || !/\/(view\/[a-z]+|compare)(\?|$)/.test(path)) return path;
      return path + (path.includes("?") ? "&" : "?") + this.state.tf.map((t) => "tf=" + encodeURIComponent(t)).join("&");
    },

    // The bar above the tabs' panel: one chip per transform, each removable.
    renderBar() {
      const panel = document.getElementById("panel");
      if (!panel) return;
      if (!this.bar) {
        this.bar = document.createElement("div");
        this.bar.id = "transform-bar";
        this.bar.className = "transform-bar";
        panel.parentNode.insertBefore(this.bar, document.getElementById("tabs"));
      }
      const bar = this.bar;
      bar.textContent = "";
      bar.hidden = this.state.tf.length === 0;
      const label = document.createElement("span");
      label.className = "muted";
      label.textContent = "Transforms (every view): ";
      bar.append(label);
      this.state.tf.forEach((t, i) => {
        const colon = t.indexOf(":");
        const chip = document.createElement("span");
        chip.className = "transform";
        chip.dataset.transform = t;
        const kind = t.slice(0, colon), arg = t.slice(colon + 1);
        chip.textContent = window.sprofSafeText(`${KINDS[kind] || kind} ${kind === "subtree" ? splitPath(arg).join(" → ") : arg}`);
        const x = document.createElement("button");
        x.className = "transform-remove"; x.textContent = "×"; x.title = "Remove this transform";
        x.addEventListener("click", () => this.remove(i));
        chip.append(x);
        bar.append(chip);
      });
      const clear = document.createElement("button");
      clear.id = "transform-clear"; clear.textContent = "Remove all";
      clear.addEventListener("click", () => { this.state.tf = []; this.state.zoom = ""; this.changed(); });
      bar.append(clear);
    },

    // Buttons that add a transform for `name` (a function as the tables name it).
    functionButtons(name) {
      const span = document.createElement("span");
      span.className = "transform-buttons";
      for (const kind of ["focus", "merge", "ignore", "rec"]) {
        const b = document.createElement("button");
        b.dataset.kind = kind;
        b.textContent = { focus: "Focus", merge: "Merge into callers", ignore: "Drop its samples", rec: "Collapse recursion" }[kind];
        b.addEventListener("click", () => this.add(`${kind}:${name}`));
        span.append(b);
      }
      return span;
    },

    // Buttons that keep only one thread's or one process's samples (a row of the Threads tab).
    threadButtons(row) {
      const span = document.createElement("span");
      span.className = "transform-buttons";
      for (const [kind, id, text] of [["tid", row.tid, "Only this thread"], ["pid", row.pid, "Only this process"]]) {
        const b = document.createElement("button");
        b.dataset.kind = kind;
        b.textContent = text;
        b.addEventListener("click", () => this.add(`${kind}:${id}`));
        span.append(b);
      }
      return span;
    },

    // The frames from the first function frame down to node i: below the process root, and
    // below the thread root in a thread's graph.
    path(f, i, skip) {
      const names = [];
      for (let n = i; n >= 0; n = f.parent[n]) names.push(plain(f.data.names[f.data.name[n]]));
      return names.reverse().slice(skip);
    },

    // A flame graph was drawn: restore its zoom and the search from the URL, keep them there,
    // and offer transforms on a frame's context menu.
    attach(f, holder) {
      const inverted = holder.id === "flame-inverted";
      const skip = inverted ? 0 : holder.closest("#thread-flame") ? 2 : 1;
      const fullPath = (i) => { const p = []; for (let n = i; n >= 0; n = f.parent[n]) p.push(f.data.names[f.data.name[n]]); return p.reverse(); };
      if (this.state.q) { f.searchEl.value = this.state.q; f.search(this.state.q); }
      if (this.state.zoom) this.restoreZoom(f, splitPath(this.state.zoom));
      f.opts.onView = () => {
        this.state.zoom = f.focus >= 0 ? joinPath(fullPath(f.focus)) : "";
        this.state.q = f.searchEl.value || "";
        this.write();
      };
      f.canvas.addEventListener("contextmenu", (e) => {
        const i = f.hit(e);
        if (i < 0) return;
        e.preventDefault();
        this.menu(e, f, i, skip, inverted);
      });
    },

    // A permalink's zoom. The frame may be one the server left out of the first tree (narrower
    // than 1/20,000 of it): zoom into the deepest frame of its path that was sent, which fetches
    // that frame's subtree, and look again, until the frame is there or nothing more comes.
    async restoreZoom(f, want) {
      const ids = want.map((n) => f.data.names.indexOf(n));
      if (ids.some((id) => id < 0)) return;
      for (let round = 0; round <= ids.length; round++) {
        const full = f.find(ids);
        if (full >= 0) { await f.zoom(full); return; }
        let k = ids.length - 1, at = -1;
        while (k > 0 && (at = f.find(ids.slice(0, k))) < 0) k--;
        if (at < 0) return;
        const before = f.n;
        await f.zoom(at);
        if (f.n === before) return;
      }
    },

    menu(e, f, i, skip, inverted) {
      document.querySelectorAll(".flame-menu").forEach((m) => m.remove());
      f.tip.hidden = true;
      const m = document.createElement("div");
      m.className = "flame-menu";
      const item = (text, kind, arg) => {
        const b = document.createElement("button");
        b.textContent = text; b.dataset.kind = kind;
        b.addEventListener("click", () => { m.remove(); this.add(`${kind}:${arg}`); });
        m.append(b);
      };
      if (!inverted && f.depth[i] < skip) {
        const note = document.createElement("p");
        note.textContent = "A process or thread root: select one in the Threads tab.";
        m.append(note);
      } else {
        const name = plain(f.data.names[f.data.name[i]]);
        const title = document.createElement("p");
        title.textContent = window.sprofSafeText(name.length > 80 ? name.slice(0, 77) + "…" : name);
        m.append(title);
        item("Focus on function", "focus", name);
        if (!inverted) item("Focus on subtree (this call path)", "subtree", joinPath(this.path(f, i, skip)));
        item("Merge function into callers", "merge", name);
        item("Drop samples with this function", "ignore", name);
        item("Collapse recursion", "rec", name);
      }
      m.style.left = Math.min(e.clientX, document.documentElement.clientWidth - 280) + "px";
      m.style.top = Math.min(e.clientY, window.innerHeight - 200) + "px";
      document.body.append(m);
      const close = (ev) => { if (!m.contains(ev.target)) { m.remove(); document.removeEventListener("mousedown", close, true); } };
      document.addEventListener("mousedown", close, true);
    },
  };

  T.joinPath = joinPath;
  T.splitPath = splitPath;
  window.sprofTransforms = T;
})();

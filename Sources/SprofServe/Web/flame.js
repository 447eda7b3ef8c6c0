// sprof serve: an interactive flame graph on a <canvas>.
//
// Input is the server's flat prefix tree in pre-order (names, parent, name, value[, base]). A canvas
// rather than SVG: a profile with 100k distinct stacks has hundreds of thousands of frames, and
// only those at least half a pixel wide are drawn; a subtree narrower than that is skipped whole.
// Names are drawn with fillText and shown with textContent: never parsed as HTML.
"use strict";

(function () {
  const ROW = 18;

  function hashName(s) {
    // FNV-1a: the colour is a pure function of the name, so the same frame keeps its colour.
    let h = 0x811c9dc5;
    for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 0x01000193); }
    return h >>> 0;
  }

  function frameColor(name) {
    const h = hashName(name);
    const v1 = (h & 0xff) / 255, v2 = ((h >>> 8) & 0xff) / 255, v3 = ((h >>> 16) & 0xff) / 255;
    if (name.endsWith("_[k]")) return `rgb(${200 + Math.round(55 * v3)},${120 + Math.round(60 * v1)},${40 + Math.round(40 * v2)})`;
    if (name.endsWith("_[i]")) return `rgb(${80 + Math.round(50 * v1)},${190 + Math.round(50 * v2)},${190 + Math.round(50 * v3)})`;
    if (name.endsWith("_[j]")) return `rgb(${60 + Math.round(50 * v1)},${180 + Math.round(60 * v2)},${60 + Math.round(50 * v3)})`;
    if (name.startsWith("[")) return `rgb(${170 + Math.round(40 * v1)},${170 + Math.round(40 * v1)},${170 + Math.round(40 * v1)})`;
    return `rgb(${205 + Math.round(50 * v3)},${Math.round(230 * v1)},${Math.round(55 * v2)})`;
  }

  function fmt(n) { return Math.round(n).toLocaleString("en-US"); }

  // Nanoseconds (wall and off-CPU time) in the unit a person reads: 1.25 s, 340 ms, 12 µs.
  function fmtNs(v) {
    const a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(a >= 1e11 ? 0 : 2) + " s";
    if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e8 ? 0 : 1) + " ms";
    if (a >= 1e3) return (v / 1e3).toFixed(1) + " µs";
    return Math.round(v) + " ns";
  }
  // Bytes (heap graphs) in binary units: 15.0 MiB, not 15,765,056 bytes.
  function fmtBytes(v) {
    const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let x = Math.abs(v), k = 0;
    while (x >= 1024 && k < units.length - 1) { x /= 1024; k++; }
    return (v < 0 ? "-" : "") + (k === 0 ? `${Math.round(x)} bytes` : `${x.toFixed(1)} ${units[k]}`);
  }
  // A value in its unit as a person reads it; `bare`: a count without the unit's name.
  function fmtValue(v, unit, bare) {
    if (unit === "nanoseconds") return fmtNs(v);
    if (unit === "bytes") return fmtBytes(v);
    return bare ? fmt(v) : `${fmt(v)} ${unit}`;
  }
  window.sprofFormatValue = fmtValue;
  window.sprofFormatBytes = fmtBytes;

  // Bidirectional controls (U+202A-202E, U+2066-2069, U+200E, U+200F, U+061C) shown as \u{…}: a
  // right-to-left override in a profiled name would otherwise reorder what is shown after it.
  const BIDI = /[\u202A-\u202E\u2066-\u2069\u200E\u200F\u061C]/g, HAS_BIDI = /[\u202A-\u202E\u2066-\u2069\u200E\u200F\u061C]/;
  function safeText(s) {
    s = String(s);
    return HAS_BIDI.test(s) ? s.replace(BIDI, (c) => "\\u{" + c.charCodeAt(0).toString(16).toUpperCase() + "}") : s;
  }
  window.sprofSafeText = safeText;

  // A name too long for a tooltip keeps its start and end (where the function's own name is).
  function cutName(s, max) {
    return s.length <= max ? s : s.slice(0, Math.floor(max * 0.6)) + " … " + s.slice(s.length - Math.floor(max * 0.4));
  }

  class FlameGraph {
    // container: an element to fill; data: the tree; opts: {unit, diff}
    constructor(container, data, opts) {
      const t0 = performance.now();
      this.container = container;
      this.opts = opts || {};
      this.expanded = new Set();
      this.layout(data);
      this.focus = -1;
      this.matches = null;
      this.layoutMs = performance.now() - t0;

      container.textContent = "";
      const bar = document.createElement("div");
      bar.className = "flame-bar";
      const reset = document.createElement("button");
      reset.textContent = "Reset zoom"; reset.className = "flame-reset"; reset.disabled = true;
      reset.addEventListener("click", () => this.zoom(-1));
      const search = document.createElement("input");
      search.type = "search"; search.placeholder = "Search (regex)"; search.className = "flame-search";
      search.addEventListener("input", () => this.search(search.value));
      const matched = document.createElement("span");
      matched.className = "flame-matched muted";
      const info = document.createElement("span");
      info.className = "flame-info muted";
      info.textContent = `${fmtValue(this.total, data.unit)}${data.unit === "nanoseconds" || data.unit === "bytes" ? " in total" : ""} in ${fmt(this.n)} frames`
        + (data.pruned ? ` (${fmt(data.pruned)} narrower than 1/20,000 of it left in their parents' self; a zoom fetches them)` : "");
      bar.append(reset, search, matched, info);
      const wrap = document.createElement("div");
      wrap.className = "flame-wrap";
      const canvas = document.createElement("canvas");
      canvas.className = "flame-canvas";
      const tip = document.createElement("div");
      tip.className = "flame-tip"; tip.hidden = true;
      wrap.append(canvas, tip);
      container.append(bar, wrap);
      Object.assign(this, { canvas, tip, matchedEl: matched, searchEl: search, resetEl: reset });
      canvas.addEventListener("mousemove", (e) => this.hover(e));
      canvas.addEventListener("mouseleave", () => { this.tip.hidden = true; this.hot = -1; });
      canvas.addEventListener("click", (e) => { const i = this.hit(e); if (i >= 0) this.zoom(i); });
      this.resizeObserver = new ResizeObserver(() => this.draw());
      this.resizeObserver.observe(wrap);
      this.draw();
    }

    // The tree's arrays: depth, x offset, children (CSR), self values; again after a zoom's
    // subtree is spliced in.
    layout(data) {
      this.data = data;
      const n = data.parent.length;
      this.n = n;
      const parent = Int32Array.from(data.parent);
      const value = Float64Array.from(data.value);
      const depth = new Int32Array(n);
      const x = new Float64Array(n);
      const next = new Float64Array(n); // next free offset among a node's children
      const childCount = new Int32Array(n + 1);
      let rootOffset = 0, maxDepth = 0;
      for (let i = 0; i < n; i++) {
        const p = parent[i];
        if (p < 0) { depth[i] = 0; x[i] = rootOffset; rootOffset += value[i]; }
        else { depth[i] = depth[p] + 1; x[i] = next[p]; next[p] += value[i]; childCount[p]++; }
        next[i] = x[i];
        if (depth[i] > maxDepth) maxDepth = depth[i];
      }
      // Children as ranges of one array (CSR), in pre-order, which is also x order.
      const start = new Int32Array(n + 1);
      let roots = 0;
      for (let i = 0; i < n; i++) if (parent[i] < 0) roots++;
      start[0] = roots;
      for (let i = 0; i < n; i++) start[i + 1] = start[i] + childCount[i];
      const fill = Int32Array.from(start.subarray(0, n));
      const kids = new Int32Array(start[n]);
      let r = 0;
      for (let i = 0; i < n; i++) {
        const p = parent[i];
        if (p < 0) kids[r++] = i; else kids[fill[p]++] = i;
      }
      const selfv = Float64Array.from(value);
      for (let i = 0; i < n; i++) if (parent[i] >= 0) selfv[parent[i]] -= value[i];
      Object.assign(this, { parent, value, depth, x, kids, start, roots, selfv, maxDepth });
      this.total = rootOffset;
      if (data.base) {
        const base = Float64Array.from(data.base);
        const selfb = Float64Array.from(base);
        for (let i = 0; i < n; i++) if (parent[i] >= 0) selfb[parent[i]] -= base[i];
        let maxAbs = 0;
        for (let i = 0; i < n; i++) maxAbs = Math.max(maxAbs, Math.abs(selfv[i] - selfb[i]));
        this.selfb = selfb; this.base = base; this.maxAbs = maxAbs || 1;
      }
      if (!this.colors || this.colors.length !== data.names.length) this.colors = data.names.map(frameColor);
      if (!this.shown || this.shown.length !== data.names.length) this.shown = data.names.map(safeText);
    }

    // Returns the fetch of the frame's subtree, when one was needed, to be awaited.
    zoom(i) {
      this.focus = i;
      this.resetEl.disabled = i < 0;
      this.draw();
      if (this.opts.onView) this.opts.onView(this);
      if (i >= 0 && this.data.pruned && this.opts.fetch) return this.expand(i);
      return Promise.resolve();
    }

    // The server sent only frames of at least 1/20,000 of the whole: a zoomed frame's subtree is
    // asked for again, cut relative to that frame, and spliced in place of what was sent.
    async expand(i) {
      const path = this.pathOf(i), key = path.join(".");
      if (this.expanded.has(key)) return;
      this.expanded.add(key);
      this.pending = (this.pending || 0) + 1;
      try {
        const sub = await this.opts.fetch("zoom=" + key);
        // The tree may have changed meanwhile (another zoom's splice): find the node again.
        const at = this.find(path);
        if (at < 0 || !sub.subtree) return;
        const d = this.data, n = this.n;
        let end = at + 1;
        while (end < n && this.depth[end] > this.depth[at]) end++;
        const m = sub.parent.length - 1, delta = m - (end - at - 1);
        const cat = (a, mid) => a.slice(0, at + 1).concat(mid, a.slice(end));
        const subParent = [];
        for (let j = 1; j <= m; j++) subParent.push(at + sub.parent[j]);
        const parent = d.parent.slice(0, at + 1).concat(subParent, d.parent.slice(end).map((p) => (p >= end ? p + delta : p)));
        const next = { ...d, parent, name: cat(d.name, sub.name.slice(1)), value: cat(d.value, sub.value.slice(1)) };
        if (d.base) next.base = cat(d.base, sub.base.slice(1));
        next.pruned = d.pruned;
        const focusPath = this.focus >= 0 ? this.pathOf(this.focus) : null;
        this.layout(next);
        this.focus = focusPath ? this.find(focusPath) : -1;
        if (this.matches && this.searchEl.value) this.search(this.searchEl.value, true);
        this.draw();
      } finally {
        this.pending--;
      }
    }

    pathOf(i) {
      const path = [];
      for (let p = i; p >= 0; p = this.parent[p]) path.push(this.data.name[p]);
      return path.reverse();
    }

    // The node whose names from a root are `path`, or -1.
    find(path) {
      let lo = 0, hi = this.roots, found = -1;
      for (const id of path) {
        found = -1;
        for (let k = lo; k < hi; k++) if (this.data.name[this.kids[k]] === id) { found = this.kids[k]; break; }
        if (found < 0) return -1;
        lo = this.start[found]; hi = this.start[found + 1];
      }
      return found;
    }

    // The visible range in value units: the focused frame fills the width; its ancestors span it.
    range() {
      if (this.focus < 0) return [0, this.total];
      return [this.x[this.focus], this.x[this.focus] + this.value[this.focus]];
    }

    isAncestorOfFocus(i) {
      for (let f = this.focus; f >= 0; f = this.parent[f]) if (f === i) return true;
      return false;
    }

    // Two passes: first what is visible (at least half a pixel wide), then a canvas as tall as
    // the deepest visible frame, so one deep but narrow stack does not leave it mostly blank.
    draw() {
      const t0 = performance.now();
      const width = Math.max(200, this.container.clientWidth || 800);
      const dpr = window.devicePixelRatio || 1;
      const [lo, hi] = this.range();
      const scale = width / Math.max(1, hi - lo);
      const rows = [];
      for (let d = 0; d <= this.maxDepth; d++) rows.push([]);
      this.rows = rows;
      const charWidth = 7;
      // Depth-first, skipping subtrees narrower than half a pixel or outside the range.
      const stack = [];
      for (let k = this.roots - 1; k >= 0; k--) stack.push(this.kids[k]);
      let drawn = 0;
      while (stack.length) {
        const i = stack.pop();
        let x0, x1;
        if (this.focus >= 0 && this.depth[i] < this.depth[this.focus]) {
          if (!this.isAncestorOfFocus(i)) continue;
          x0 = 0; x1 = width;
        } else {
          const a = this.x[i], b = a + this.value[i];
          if (b <= lo || a >= hi) continue;
          x0 = (Math.max(a, lo) - lo) * scale; x1 = (Math.min(b, hi) - lo) * scale;
        }
        if (x1 - x0 < 0.5) continue;
        drawn++;
        rows[this.depth[i]].push(x0, x1, i);
        for (let k = this.start[i + 1] - 1; k >= this.start[i]; k--) stack.push(this.kids[k]);
      }
      // The canvas is as deep as the deepest frame at least 2 px wide: a narrower column (one
      // sample of a 500-frame recursion, 0.75 px) is drawn where it fits but does not make the
      // canvas thousands of pixels tall and mostly blank; a zoom widens it.
      let deepest = 0;
      for (let d = 0; d < rows.length; d++) {
        const row = rows[d];
        for (let k = 0; k < row.length; k += 3) if (row[k + 1] - row[k] >= 2) { deepest = d; break; }
      }
      const height = (deepest + 1) * ROW;
      const c = this.canvas;
      c.width = Math.round(width * dpr); c.height = Math.round(height * dpr);
      c.style.width = width + "px"; c.style.height = height + "px";
      const g = c.getContext("2d");
      g.setTransform(dpr, 0, 0, dpr, 0, 0);
      g.clearRect(0, 0, width, height);
      g.font = "12px sans-serif";
      g.textBaseline = "middle";
      for (let d = 0; d <= deepest; d++) {
        const row = rows[d], y = d * ROW;
        for (let k = 0; k < row.length; k += 3) {
          const x0 = row[k], x1 = row[k + 1], i = row[k + 2];
          g.fillStyle = this.fill(i);
          g.fillRect(x0, y, Math.max(0.5, x1 - x0 - 0.5), ROW - 1);
          if (x1 - x0 > 3 * charWidth) {
            const name = this.shown[this.data.name[i]];
            const fit = Math.floor((x1 - x0 - 6) / charWidth);
            g.fillStyle = "#000";
            g.fillText(fit >= name.length ? name : name.slice(0, Math.max(0, fit - 2)) + "..", x0 + 3, y + ROW / 2);
          }
        }
      }
      this.drawn = drawn;
      this.drawMs = performance.now() - t0;
      window.sprofFlameStats = { frames: this.n, drawn, layoutMs: this.layoutMs, drawMs: this.drawMs };
    }

    fill(i) {
      if (this.matches && this.matches[this.data.name[i]]) return "rgb(230,0,230)";
      if (this.base) {
        const d = (this.selfv[i] - this.selfb[i]) / this.maxAbs;
        const s = Math.round(255 - 200 * Math.min(1, Math.abs(d)));
        if (this.selfv[i] > 0 && this.selfb[i] === 0 && d > 0) return `rgb(255,${s},${s})`;
        return d > 0 ? `rgb(255,${s},${s})` : d < 0 ? `rgb(${s},${s},255)` : "rgb(235,235,235)";
      }
      return this.colors[this.data.name[i]];
    }

    hit(e) {
      const rect = this.canvas.getBoundingClientRect();
      const px = e.clientX - rect.left, py = e.clientY - rect.top;
      const row = this.rows && this.rows[Math.floor(py / ROW)];
      if (!row) return -1;
      // Triples (x0, x1, node) in increasing x: binary search.
      let a = 0, b = row.length / 3 - 1;
      while (a <= b) {
        const m = (a + b) >> 1;
        if (px < row[3 * m]) b = m - 1;
        else if (px >= row[3 * m + 1]) a = m + 1;
        else return row[3 * m + 2];
      }
      return -1;
    }

    hover(e) {
      const i = this.hit(e);
      if (i < 0) { this.tip.hidden = true; return; }
      const name = cutName(this.shown[this.data.name[i]], 240);
      const pct = 100 * this.value[i] / Math.max(1, this.total);
      const unit = this.data.unit, v = (x) => fmtValue(x, unit, true);
      let text = `${name}\n${fmtValue(this.value[i], unit)} (${pct.toFixed(2)}%), self ${v(this.selfv[i])}`;
      if (this.base) {
        const d = this.selfv[i] - this.selfb[i];
        text += `\nbase self ${v(this.selfb[i])} (scaled), change ${d >= 0 ? "+" : ""}${v(d)}`;
      }
      this.tip.textContent = text;
      this.tip.hidden = false;
      // Fixed to the viewport and kept inside it: below-right of the pointer, flipped left or
      // above where it would not fit (the bottom row holds the hottest leaves).
      const w = this.tip.offsetWidth, h = this.tip.offsetHeight;
      const vw = document.documentElement.clientWidth, vh = window.innerHeight;
      let left = e.clientX + 12, top = e.clientY + 14;
      if (left + w > vw - 4) left = Math.max(4, e.clientX - w - 12);
      if (top + h > vh - 4) top = Math.max(4, e.clientY - h - 10);
      this.tip.style.left = left + "px";
      this.tip.style.top = top + "px";
    }

    search(text, quiet) {
      if (!text) { this.matches = null; this.matchedEl.textContent = ""; this.draw(); if (this.opts.onView) this.opts.onView(this); return; }
      let re;
      try { re = new RegExp(text); } catch (_) { re = null; }
      const names = this.data.names;
      const m = new Uint8Array(names.length);
      for (let k = 0; k < names.length; k++) m[k] = re ? (re.test(names[k]) ? 1 : 0) : (names[k].includes(text) ? 1 : 0);
      this.matches = m;
      if (this.data.pruned && this.opts.fetch) {
        // Frames narrower than 1/20,000 were not sent: the matched share is summed by the server
        // over the whole tree, for the names matched here (a bit mask, base64url).
        if (!quiet) this.matchShare(m, text);
      } else {
        // Matched share: frames that match, not counting those under a matching ancestor twice.
        const under = new Uint8Array(this.n);
        let sum = 0;
        for (let i = 0; i < this.n; i++) {
          const p = this.parent[i];
          const covered = p >= 0 && (under[p] || m[this.data.name[p]]);
          under[i] = covered ? 1 : 0;
          if (!covered && m[this.data.name[i]]) sum += this.value[i];
        }
        this.matchedPercent = 100 * sum / Math.max(1, this.total);
        this.matchedEl.textContent = `Matched: ${this.matchedPercent.toFixed(2)}%`;
      }
      if (quiet) return;
      this.draw();
      if (this.opts.onView) this.opts.onView(this);
    }

    async matchShare(m, text) {
      const bytes = new Uint8Array((m.length + 7) >> 3);
      for (let k = 0; k < m.length; k++) if (m[k]) bytes[k >> 3] |= 1 << (k & 7);
      let bin = "";
      for (let k = 0; k < bytes.length; k++) bin += String.fromCharCode(bytes[k]);
      const mask = btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
      this.matchedPercent = undefined;
      this.matchedEl.textContent = "Matched: …";
      const asked = this.asked = (this.asked || 0) + 1;
      try {
        const r = await this.opts.fetch("match=" + mask);
        if (asked !== this.asked || this.searchEl.value !== text) return;
        this.matchedPercent = 100 * r.matched / Math.max(1, this.total);
        this.matchedEl.textContent = `Matched: ${this.matchedPercent.toFixed(2)}%`;
      } catch (e) {
        if (asked === this.asked) this.matchedEl.textContent = "Matched: " + String(e.message || e);
      }
    }
  }

  window.SprofFlameGraph = FlameGraph;
})();

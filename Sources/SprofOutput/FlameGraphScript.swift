// The stylesheet and script embedded in every flame graph. Both are constant: everything that varies
// (geometry, totals) is read from data-* attributes and every frame name from the DOM (`<title>`), so no
// profile data ever becomes part of the script's source text, whatever the symbol names contain.
// Written for sprof; not derived from flamegraph.pl's or inferno's scripts.

enum FlameGraphAssets {
    static let style: StaticString = """
    <style type="text/css"><![CDATA[
    text { fill: #000; }
    #title, #subtitle, #empty { text-anchor: middle; }
    #subtitle { fill: #444; }
    #note { text-anchor: end; fill: #666; }
    #search, #matched { text-anchor: end; }
    .button { cursor: pointer; fill: #333; }
    .button:hover { fill: #a00; }
    .hide { display: none; }
    .parent { opacity: 0.5; }
    #frames g.f { cursor: pointer; }
    #frames g.f:hover rect { stroke: #000; stroke-width: 0.5; }
    #frames text { pointer-events: none; }
    ]]></style>

    """

    static let script: StaticString = """
    <script type="text/ecmascript"><![CDATA[
    "use strict";
    var fg = null;
    function init(evt) {
      var group = document.getElementById("frames");
      if (!group) return;
      fg = {
        details: document.getElementById("details"),
        matched: document.getElementById("matched"),
        search: document.getElementById("search"),
        unzoom: document.getElementById("unzoom"),
        total: +group.getAttribute("data-total"),
        xpad: +group.getAttribute("data-xpad"),
        width: +group.getAttribute("data-width"),
        charWidth: +group.getAttribute("data-charwidth"),
        inverted: group.getAttribute("data-inverted") === "1",
        frames: [],
        zoomed: null,
        term: null
      };
      var gs = group.getElementsByTagName("g");
      for (var i = 0; i < gs.length; i++) {
        var g = gs[i];
        var rect = g.getElementsByTagName("rect")[0];
        var info = g.getElementsByTagName("title")[0].textContent;
        var cut = info.lastIndexOf(" (");
        var y = +rect.getAttribute("y");
        g.fgIndex = i;
        fg.frames.push({
          g: g, rect: rect, text: g.getElementsByTagName("text")[0],
          name: cut >= 0 ? info.slice(0, cut) : info, info: info,
          start: +g.getAttribute("data-x"), count: +g.getAttribute("data-w"),
          level: fg.inverted ? y : -y, fill: rect.getAttribute("fill"),
          x0: +rect.getAttribute("x"), w0: +rect.getAttribute("width")
        });
      }
      group.addEventListener("mouseover", function (e) {
        var f = frameOf(e.target);
        if (f) fg.details.textContent = f.info;
      });
      group.addEventListener("mouseout", function (e) {
        if (frameOf(e.target)) fg.details.textContent = " ";
      });
      group.addEventListener("click", function (e) {
        var f = frameOf(e.target);
        if (f) zoom(f);
      });
      fg.unzoom.addEventListener("click", unzoom);
      fg.search.addEventListener("click", function () {
        if (fg.term !== null) resetSearch(); else searchPrompt();
      });
      window.addEventListener("keydown", function (e) {
        if ((e.ctrlKey || e.metaKey) && (e.key === "f" || e.key === "F")) {
          e.preventDefault();
          searchPrompt();
        } else if (e.key === "Escape") {
          if (fg.term !== null) resetSearch(); else if (fg.zoomed) unzoom();
        }
      });
    }
    function frameOf(node) {
      while (node && node.fgIndex === undefined) node = node.parentNode;
      return node ? fg.frames[node.fgIndex] : null;
    }
    // Same rule as the renderer: whole name, or its start plus "..", or nothing below 3 characters.
    function label(f, w) {
      var n = Math.floor((w - 3) / fg.charWidth), s = "";
      if (n >= 3) s = f.name.length <= n ? f.name : f.name.slice(0, n - 2) + "..";
      f.text.textContent = s;
    }
    function place(f, x, w, cls) {
      f.g.setAttribute("class", cls);
      if (cls === "f hide") return;
      f.rect.setAttribute("x", x.toFixed(2));
      f.rect.setAttribute("width", w.toFixed(2));
      f.text.setAttribute("x", (x + 3).toFixed(2));
      label(f, w);
    }
    // Positions are in samples (data-x, data-w), so containment tests are exact integer comparisons.
    function zoom(z) {
      fg.zoomed = z;
      fg.unzoom.setAttribute("class", "button");
      var scale = fg.width / z.count;
      for (var i = 0; i < fg.frames.length; i++) {
        var f = fg.frames[i];
        var inside = f.start >= z.start && f.start + f.count <= z.start + z.count;
        if (f.level < z.level) {
          if (f.start <= z.start && f.start + f.count >= z.start + z.count) {
            place(f, fg.xpad, fg.width, "f parent");
          } else {
            place(f, 0, 0, "f hide");
          }
        } else if (inside) {
          place(f, fg.xpad + (f.start - z.start) * scale, f.count * scale, "f");
        } else {
          place(f, 0, 0, "f hide");
        }
      }
    }
    function unzoom() {
      fg.zoomed = null;
      fg.unzoom.setAttribute("class", "button hide");
      for (var i = 0; i < fg.frames.length; i++) {
        var f = fg.frames[i];
        place(f, f.x0, f.w0, "f");
      }
    }
    function searchPrompt() {
      var term = window.prompt("Search frames (regular expression, e.g. ^malloc|free$):",
                               fg.term === null ? "" : fg.term);
      if (term === null || term === "") return;
      var re;
      try {
        re = new RegExp(term);
      } catch (err) {
        window.alert(err.message);
        return;
      }
      search(term, re);
    }
    // A sample is counted once however many of its frames match: matched frames are merged as
    // intervals of samples, and a nested match lies inside its matching ancestor's interval.
    function search(term, re) {
      var hits = [];
      for (var i = 0; i < fg.frames.length; i++) {
        var f = fg.frames[i];
        if (re.test(f.name)) {
          f.rect.setAttribute("fill", "rgb(230,0,230)");
          hits.push(f);
        } else {
          f.rect.setAttribute("fill", f.fill);
        }
      }
      hits.sort(function (a, b) { return a.start - b.start; });
      var covered = 0, end = -1;
      for (var j = 0; j < hits.length; j++) {
        var s = hits[j].start, e = s + hits[j].count;
        if (s >= end) {
          covered += e - s;
          end = e;
        } else if (e > end) {
          covered += e - end;
          end = e;
        }
      }
      fg.term = term;
      fg.search.textContent = "Reset Search";
      var pct = fg.total > 0 ? 100 * covered / fg.total : 0;
      fg.matched.textContent = "Matched: " + pct.toFixed(2) + "%";
    }
    function resetSearch() {
      fg.term = null;
      for (var i = 0; i < fg.frames.length; i++) fg.frames[i].rect.setAttribute("fill", fg.frames[i].fill);
      fg.search.textContent = "Search";
      fg.matched.textContent = " ";
    }
    ]]></script>

    """
}

// Minimal fake DOM: enough for the flame graph script (getElementById, getElementsByTagName, attributes, textContent, events).
const fs = require("fs");
const svg = fs.readFileSync(process.argv[2], "utf8");
function el(tag, attrs, parent) { return { tag, attrs: Object.assign({}, attrs), children: [], parentNode: parent, textContent: "", listeners: {},
  getAttribute(n) { return n in this.attrs ? this.attrs[n] : null; }, setAttribute(n, v) { this.attrs[n] = String(v); },
  getElementsByTagName(t) { const out = []; (function walk(e) { for (const c of e.children) { if (c.tag === t) out.push(c); walk(c); } })(this); return out; },
  addEventListener(t, f) { this.listeners[t] = f; } }; }
const unesc = s => s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, "&");
const attrs = s => { const a = {}; s.replace(/([\w:-]+)="([^"]*)"/g, (_, k, v) => { a[k] = unesc(v); }); return a; };
const root = el("svg", {}, null); const byId = {};
let framesGroup = null;
for (const m of svg.matchAll(/<text id="(\w+)"([^>]*)>([^<]*)<\/text>/g)) { const t = el("text", attrs(m[2]), root); t.attrs.id = m[1]; t.textContent = unesc(m[3]); byId[m[1]] = t; }
const gm = svg.match(/<g id="frames"([^>]*)>/); framesGroup = el("g", attrs(gm[1]), root); byId.frames = framesGroup;
for (const m of svg.matchAll(/<g class="f"([^>]*)><title>([^<]*)<\/title><rect([^>]*)\/><text([^>]*)>([^<]*)<\/text><\/g>/g)) {
  const g = el("g", attrs(m[1]), framesGroup); g.attrs.class = "f"; framesGroup.children.push(g);
  const ti = el("title", {}, g); ti.textContent = unesc(m[2]); const r = el("rect", attrs(m[3]), g); const tx = el("text", attrs(m[4]), g); tx.textContent = unesc(m[5]);
  g.children.push(ti, r, tx);
}
const winListeners = {};
global.document = { getElementById: id => byId[id] || null };
global.window = { addEventListener: (t, f) => { winListeners[t] = f; }, prompt: () => global.nextTerm, alert: m => console.log("ALERT", m) };
const script = svg.split("<![CDATA[")[2].split("]]>")[0];
eval(script + "\nglobal.init = init; global.fgState = () => fg;");
init({});

// Checks, run by FlameGraphTests.testScriptBehaviour against simple.expected.svg.
const fgFrames = framesGroup.children;
const find = n => fgFrames.find(g => g.children[0].textContent.startsWith(n + " ("));
let failures = 0;
function expect(what, actual, expected) {
  if (actual !== expected) { failures++; console.log(`FAIL ${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`); }
}
framesGroup.listeners.mouseover({ target: find("compute").children[1] });
expect("hover details", byId.details.textContent, "compute (60 samples, 60.00%)");
framesGroup.listeners.mouseout({ target: find("compute").children[1] });
expect("mouseout details", byId.details.textContent, " ");
framesGroup.listeners.click({ target: find("compute").children[2] });
expect("zoomed frame class", find("compute").attrs.class, "f");
expect("zoomed frame width", find("compute").children[1].attrs.width, "1180.00");
expect("ancestor dimmed", find("main").attrs.class, "f parent");
expect("ancestor full width", find("all").children[1].attrs.width, "1180.00");
expect("child rescaled", find("sqrt").children[1].attrs.width, "590.00");
expect("sibling hidden", find("parse").attrs.class, "f hide");
expect("reset zoom shown", byId.unzoom.attrs.class, "button");
byId.unzoom.listeners.click();
expect("unzoomed width", find("compute").children[1].attrs.width, "708.00");
expect("unzoomed class", find("parse").attrs.class, "f");
expect("reset zoom hidden", byId.unzoom.attrs.class, "button hide");
global.nextTerm = "^(main|compute|sqrt)$";
winListeners.keydown({ ctrlKey: true, key: "f", preventDefault() {} });
expect("nested matches counted once", byId.matched.textContent, "Matched: 96.00%");
expect("search becomes reset", byId.search.textContent, "Reset Search");
expect("match highlighted", find("sqrt").children[1].attrs.fill, "rgb(230,0,230)");
byId.search.listeners.click();
expect("search cleared", byId.matched.textContent, " ");
global.nextTerm = "sqrt|multiply|write$";
byId.search.listeners.click();
expect("disjoint matches summed", byId.matched.textContent, "Matched: 76.00%");
winListeners.keydown({ key: "Escape" });
expect("escape clears search", byId.search.textContent, "Search");
expect("fill restored", find("sqrt").children[1].attrs.fill !== "rgb(230,0,230)", true);
console.log(failures === 0 ? "OK" : `${failures} FAILED`);
process.exit(failures === 0 ? 0 : 1);

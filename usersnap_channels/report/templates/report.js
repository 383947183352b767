// The report's behaviour: filters over the per-data-point rows, exact aggregates of the selection, the
// theme table (built with DOM nodes and textContent only: feedback is user input) and the Vega charts.
// Sets <html data-ready="true"> once every chart has rendered, and data-renders after each update.
const page = JSON.parse(document.getElementById("report-data").textContent);
const DAY_MS = 86400000;
const root = document.documentElement;
const $ = (id) => document.getElementById(id);
const state = { channel: 0, views: {}, renders: 0, allTrends: false, pending: Promise.resolve() };

window.addEventListener("error", (event) => showError(event.message));
window.addEventListener("unhandledrejection", (event) => showError(String(event.reason)));

function showError(message) {
  root.dataset.error = message;
  const box = document.createElement("p");
  box.className = "error";
  box.textContent = "The report could not render: " + message;
  document.body.prepend(box);
}

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, String(value));
    else node[key] = value;
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const channel = () => page.channels[state.channel];
const pct = (x) => (100 * x).toFixed(1) + "%";
const int = (n) => n.toLocaleString("en-US");

function fillSelect(select, options) {
  select.replaceChildren(...options.map(([value, text]) => new Option(text, value)));
}

function fillFilters(c) {
  fillSelect($("f-source"), [
    ["all", "All sources and projects"],
    ...c.sourceNames.map((name, i) => ["s" + i, name + " (all projects)"]),
    ...c.projects.map((p, i) => ["p" + i, c.sourceNames[p.source] + " / " + p.name]),
  ]);
  const values = (list, none) => list.map((v, i) => [String(i), v === null ? none : v]);
  fillSelect($("f-status"), [["all", "All statuses"], ...values(c.statuses, "(no status)")]);
  fillSelect($("f-priority"), [["all", "All priorities"], ...values(c.priorities, "(no priority)")]);
  fillSelect($("f-tag"), [["all", "All tags"], ...values(c.tags, "")]);
  $("f-search").value = "";
  c.haystacks ??= c.themes.map((t) =>
    [t.label, ...t.keywords, ...t.examples.map((e) => e.text)].join(" \n ").toLowerCase());
}

// Which rows the filters keep: a 0/1 per data point.
function select(c) {
  const R = c.rows, n = R.day.length, sel = new Uint8Array(n);
  const source = $("f-source").value, status = $("f-status").value, priority = $("f-priority").value;
  const tag = $("f-tag").value === "all" ? -1 : Number($("f-tag").value);
  const project = source.startsWith("p") ? Number(source.slice(1)) : -1;
  const projectOk = source.startsWith("s") ? c.projects.map((p) => p.source === Number(source.slice(1))) : null;
  const st = status === "all" ? -1 : Number(status), pr = priority === "all" ? -1 : Number(priority);
  const tagOk = tag < 0 ? null : c.tagSets.map((s) => s.includes(tag));
  const words = $("f-search").value.toLowerCase().split(/\s+/).filter(Boolean);
  const themeOk = words.length ? c.haystacks.map((h) => words.every((w) => h.includes(w))) : null;
  for (let i = 0; i < n; i++) {
    if (project >= 0 && R.project[i] !== project) continue;
    if (projectOk && !projectOk[R.project[i]]) continue;
    if (st >= 0 && R.status[i] !== st) continue;
    if (pr >= 0 && R.priority[i] !== pr) continue;
    if (tagOk && !tagOk[R.tagSet[i]]) continue;
    if (themeOk && (R.theme[i] < 0 || !themeOk[R.theme[i]])) continue;
    sel[i] = 1;
  }
  return sel;
}

function ratingAcc(themes) {
  return { count: new Int32Array(themes), sum: new Float64Array(themes), pro: new Int32Array(themes),
    det: new Int32Array(themes), all: { count: 0, sum: 0, pro: 0, det: 0 } };
}

function addRating(acc, t, v) {
  const all = acc.all;
  all.count++; all.sum += v; all.pro += v >= 9; all.det += v <= 6;
  if (t < 0) return;
  acc.count[t]++; acc.sum[t] += v; acc.pro[t] += v >= 9; acc.det[t] += v <= 6;
}

// Every total of the selection, exactly as the warehouse computes it for the whole channel.
function aggregate(c, sel) {
  const R = c.rows, T = c.themes.length, D = c.days, today = c.today;
  const size = new Int32Array(T), last7 = new Int32Array(T), prev28 = new Int32Array(T);
  const daily = new Int32Array(T * D), ratings = c.ratings.map(() => ratingAcc(T));
  const totals = { dataPoints: 0, withText: 0, themed: 0, last7: 0 };
  for (let i = 0; i < sel.length; i++) {
    if (!sel[i]) continue;
    const t = R.theme[i], d = R.day[i];
    totals.dataPoints++;
    totals.withText += R.text[i];
    if (d > today - 7 && d <= today) totals.last7++;
    for (let k = 0; k < ratings.length; k++) {
      const v = R.ratings[k][i];
      if (v !== null) addRating(ratings[k], t, v);
    }
    if (t < 0) continue;
    totals.themed++;
    size[t]++;
    daily[t * D + d]++;
    if (d > today - 7 && d <= today) last7[t]++;
    else if (d > today - 35 && d <= today - 7) prev28[t]++;
  }
  const { minRecent, minRatio } = page.emerging;
  const themes = [];
  for (let t = 0; t < T; t++) {
    if (!size[t]) continue;
    const base = prev28[t] / 4;
    themes.push({ index: t, theme: c.themes[t], size: size[t], last7: last7[t], prev28: prev28[t],
      share: size[t] / Math.max(totals.withText, 1), growth: prev28[t] === 0 ? null : last7[t] / base - 1,
      emerging: last7[t] >= minRecent && last7[t] >= minRatio * base });
  }
  themes.sort((a, b) => b.size - a.size || a.theme.id - b.theme.id);
  return { totals, themes, daily, ratings };
}

function names(c) {
  if (c.names) return c.names;
  const seen = {};
  for (const t of c.themes) seen[t.label] = (seen[t.label] || 0) + 1;
  c.names = c.themes.map((t) => (seen[t.label] > 1 ? `${t.label} (#${t.id})` : t.label));
  return c.names;
}

function series(c, agg, ranked) {
  const start = Date.parse(c.start + "T00:00:00Z"), label = names(c), values = [];
  ranked.forEach((r, rank) => {
    for (let d = 0; d < c.days; d++) {
      values.push({ theme: label[r.index], day: start + d * DAY_MS, n: agg.daily[r.index * c.days + d],
        emerging: r.emerging, rank });
    }
  });
  return values;
}

function ratingText(r, acc, t) {
  const count = t === undefined ? acc.all.count : acc.count[t];
  if (!count) return { text: "–", value: null, count };
  const sum = t === undefined ? acc.all.sum : acc.sum[t];
  if (r.kind === "nps") {
    const pro = t === undefined ? acc.all.pro : acc.pro[t], det = t === undefined ? acc.all.det : acc.det[t];
    const nps = Math.round((100 * (pro - det)) / count);
    return { text: (nps > 0 ? "+" : "") + nps, value: nps, count };
  }
  const mean = sum / count;
  return { text: mean.toFixed(1) + " / " + r.scale, value: mean, count };
}

function growthText(r) {
  if (r.growth === null) return r.last7 ? "new" : "–";
  const g = Math.round(100 * r.growth);
  return (g > 0 ? "+" : "") + g + "%";
}

function renderKpis(c, agg) {
  const t = agg.totals, set = (id, text, value) => { $(id).textContent = text; $(id).dataset.value = value; };
  set("kpi-data-points", int(t.dataPoints), t.dataPoints);
  set("kpi-with-text", int(t.withText), t.withText);
  set("kpi-themed", int(t.themed), t.themed);
  const unassigned = t.withText ? 1 - t.themed / t.withText : 0;
  set("kpi-unassigned", pct(unassigned), unassigned);
  set("kpi-themes", int(agg.themes.length), agg.themes.length);
  set("kpi-last-7", int(t.last7), t.last7);
  const emerging = agg.themes.filter((r) => r.emerging).length;
  set("kpi-emerging", int(emerging), emerging);
  $("kpi-ratings").replaceChildren(...c.ratings.map((r, k) => {
    const shown = ratingText(r, agg.ratings[k]);
    return el("span", { class: "l", "data-rating": r.name, "data-value": shown.value ?? "", "data-count": shown.count },
      el("strong", {}, (r.kind === "nps" ? "NPS " : "") + shown.text), ` ${r.name} (${int(shown.count)} answers)`);
  }));
  $("kpi-ratings").classList.toggle("kpi", c.ratings.length > 0);
}

function renderHead(c) {
  const heads = ["#", "Theme", "Size", "Share", "7-day growth",
    ...c.ratings.map((r) => (r.kind === "nps" ? "NPS: " : "Rating: ") + r.name), "Examples"];
  $("themes-head").replaceChildren(...heads.map((h) => el("th", { scope: "col", title: h }, h.length > 28 ? h.slice(0, 26) + "…" : h)));
}

function exampleList(theme, sel) {
  const shown = theme.examples.filter((e) => sel[e.row]);
  const list = el("ol", { class: "examples" }, ...shown.map((e) => {
    const where = el("span", { class: "where" }, `${e.when} · ${e.project} `);
    if (e.link && /^https?:\/\//i.test(e.link)) {
      where.append(el("a", { href: e.link, target: "_blank", rel: "noopener noreferrer" }, "Open in Usersnap ↗"));
    }
    return el("li", {}, e.text, where);
  }));
  return el("details", {}, el("summary", {}, `${shown.length} example${shown.length === 1 ? "" : "s"}`), list);
}

function renderTable(c, agg, sel) {
  const label = names(c);
  const rows = agg.themes.map((r, rank) => {
    const t = r.theme;
    const cells = [
      el("td", { class: "num" }, rank + 1),
      el("td", {}, el("span", { class: "label" }, label[r.index]),
        r.emerging ? el("span", { class: "badge", title: "Emerging: see the rule above the small multiples" }, "emerging") : null,
        el("span", { class: "sub keywords" }, t.keywords.join(", "))),
      el("td", { class: "num" }, int(r.size)),
      el("td", { class: "num" }, pct(r.share)),
      el("td", { class: "num growth" + (r.growth > 0 ? " up" : "") }, growthText(r),
        el("span", { class: "sub" }, `${r.last7} last 7 d · ${r.prev28} in 28 d before`)),
      ...c.ratings.map((rt, k) => {
        const shown = ratingText(rt, agg.ratings[k], r.index);
        return el("td", { class: "num", "data-rating": rt.name, "data-value": shown.value ?? "", "data-count": shown.count },
          shown.text, el("span", { class: "sub" }, `${shown.count} answers`));
      }),
      el("td", {}, exampleList(t, sel)),
    ];
    return el("tr", { "data-theme-id": t.id, "data-size": r.size, "data-last7": r.last7, "data-prev28": r.prev28,
      "data-share": r.share, "data-emerging": r.emerging }, ...cells);
  });
  document.querySelector("#themes tbody").replaceChildren(...rows);
  $("no-themes").hidden = rows.length > 0;
}

// A chart's data replaced by the selection's; an empty selection hides the chart (Vega cannot scale nothing).
async function setData(name, values) {
  const box = $("chart-" + name);
  box.hidden = values.length === 0;
  if (box.hidden) return;
  if (!state.views[name]) {
    const spec = { ...page.specs[name], datasets: { [name]: values } };
    state.views[name] = (await vegaEmbed(box, spec, { renderer: "svg", actions: false, mode: "vega-lite" })).view;
    return;
  }
  await state.views[name].data(name, values).runAsync();
}

async function update() {
  const c = channel(), sel = select(c), agg = aggregate(c, sel);
  renderKpis(c, agg);
  renderTable(c, agg, sel);
  await setData("top", series(c, agg, agg.themes.slice(0, page.topLines)));
  const shown = state.allTrends ? agg.themes : agg.themes.slice(0, page.multiples);
  await setData("multiples", series(c, agg, shown));
  const more = $("all-trends");
  more.hidden = agg.themes.length <= page.multiples;
  more.textContent = state.allTrends ? `Show the largest ${page.multiples} only` : `Show all ${agg.themes.length} themes`;
  state.renders++;
  root.dataset.renders = String(state.renders);
}

// Filter changes queue up, so a chart never renders two selections at once.
function schedule() {
  state.pending = state.pending.then(update).catch((error) => showError(String(error)));
  return state.pending;
}

function switchChannel(index) {
  state.channel = index;
  document.querySelectorAll("section.overview").forEach((s) => { s.hidden = Number(s.dataset.channel) !== index; });
  fillFilters(channel());
  renderHead(channel());
  return schedule();
}

async function main() {
  for (const id of ["f-source", "f-status", "f-priority", "f-tag"]) $(id).addEventListener("change", schedule);
  let typing;
  $("f-search").addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(schedule, 150); });
  $("all-trends").addEventListener("click", () => { state.allTrends = !state.allTrends; schedule(); });
  $("f-reset").addEventListener("click", () => switchChannel(state.channel));
  $("f-channel")?.addEventListener("change", (e) => switchChannel(Number(e.target.value)));
  await switchChannel(0);
  root.dataset.readyMs = String(performance.now()); // since navigation start
  root.dataset.ready = "true";
}

main().catch((error) => showError(String(error)));

// The sweeps of the chosen experiment: a list, and the chosen sweep's view — its state and best
// trial, two hand-drawn SVG plots (the final metric per trial; each trial's metric over steps) and
// a trial table sorted by any column. Data: GET .../sweeps, .../sweeps/{s} and .../trials.

import { ApiError, call, list } from "./api.js";
import { byId, h, render, setText } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const W = 560, H = 220, PAD = 36;
const sweepView = { experiment: null, sweep: null, sortBy: "number", descending: false };

function s(tag, attrs = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) element.setAttribute(name, String(value));
  element.append(...children.map((c) => (c instanceof Node ? c : document.createTextNode(String(c)))));
  return element;
}

export async function refreshSweeps(experiment, onChoose) {
  if (experiment !== sweepView.experiment) { sweepView.experiment = experiment; sweepView.sweep = null; }
  byId("sweeps-area").hidden = !experiment;
  if (!experiment) return;
  const sweeps = await list(`${experiment}/sweeps`);
  sweeps.sort((a, b) => a.name.localeCompare(b.name));
  if (sweepView.sweep && !sweeps.some((w) => w.id === sweepView.sweep)) sweepView.sweep = null;
  render(byId("sweeps"), [sweeps.map((w) => [w.id, w.properties?.executionState]), sweepView.sweep], () =>
    sweeps.map((w) => h("li", {}, h("button", {
      type: "button", "data-key": w.id, "aria-current": w.id === sweepView.sweep ? "true" : null,
      onclick: () => { sweepView.sweep = w.id; onChoose(); },
    }, `Sweep ${w.name}`, h("span", { class: "muted" }, ` · ${w.properties?.executionState}`)))));
  byId("no-sweeps").hidden = sweeps.length > 0;
  byId("sweep").hidden = !sweepView.sweep;
  if (sweepView.sweep) await refreshSweep();
}

async function refreshSweep() {
  let sweep;
  try {
    sweep = await call("GET", sweepView.sweep);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) { sweepView.sweep = null; return; }
    throw error;
  }
  const trials = await list(`${sweep.id}/trials`);
  const p = sweep.properties;
  const goal = p.objective.goal;
  setText(byId("sweep-title"), `Sweep ${sweep.name}`);
  const counts = Object.entries(p.trialCounts || {}).filter(([, n]) => n).map(([k, n]) => `${n} ${k}`).join(", ");
  const best = p.bestTrial;
  setText(byId("sweep-summary"), `${p.executionState} · ${p.sampling.algorithm} · ${trials.length} of ` +
    `${p.plannedTrials} trials (${counts || "none yet"}) · ${goal} ${p.objective.metricName}` +
    (best ? ` · best: ${best.jobName} = ${fmt(best.finalMetric)}` : ""));
  render(byId("sweep-plots"), [trials, goal], () => [perTrialPlot(trials, p.objective.metricName, best),
                                                     stepsPlot(trials, p.objective.metricName)]);
  renderTable(trials);
}

function fmt(value) {
  return value === null || value === undefined ? "–" : Number(value).toPrecision(4);
}

function scale(values, low, high) {
  let min = Math.min(...values), max = Math.max(...values);
  if (!Number.isFinite(min)) { min = 0; max = 1; }
  if (min === max) { min -= 0.5; max += 0.5; }
  return (v) => high - ((v - min) / (max - min)) * (high - low);
}

function axes(title, yValues, xLabel) {
  const lo = Math.min(...yValues), hi = Math.max(...yValues);
  return [
    s("line", { x1: PAD, y1: H - PAD, x2: W - 8, y2: H - PAD, class: "axis" }),
    s("line", { x1: PAD, y1: 8, x2: PAD, y2: H - PAD, class: "axis" }),
    s("text", { x: 4, y: 14, class: "tick" }, Number.isFinite(hi) ? fmt(hi) : ""),
    s("text", { x: 4, y: H - PAD, class: "tick" }, Number.isFinite(lo) ? fmt(lo) : ""),
    s("text", { x: W / 2, y: H - 6, class: "tick", "text-anchor": "middle" }, xLabel),
    s("title", {}, title),
  ];
}

// The final (else best so far) metric of each trial, by trial number; the best trial ringed.
function perTrialPlot(trials, metric, best) {
  const points = trials.map((t) => [t.number, t.finalMetric ?? t.bestMetric, t.state]).filter(([, v]) => v != null);
  const ys = points.map(([, v]) => v);
  const y = scale(ys, 12, H - PAD);
  const x = (n) => PAD + 8 + (n / Math.max(1, trials.length - 1)) * (W - PAD - 24);
  return s("svg", { viewBox: `0 0 ${W} ${H}`, class: "plot", role: "img",
                    "aria-label": `${metric} per trial: ${points.length} trials with a value` },
    ...axes(`${metric} per trial`, ys, "trial"),
    ...points.map(([n, v, state]) => s("circle", { cx: x(n), cy: y(v), r: best && best.number === n ? 6 : 4,
                                                  class: `dot st-${state}${best && best.number === n ? " best" : ""}` },
                                       s("title", {}, `trial ${n} (${state}): ${fmt(v)}`))));
}

// Each trial's metric over its steps: one line per trial, stopped trials dashed.
function stepsPlot(trials, metric) {
  const all = trials.flatMap((t) => t.intermediate || []);
  const ys = all.map((p) => p.value);
  const steps = all.map((p) => p.step);
  const y = scale(ys, 12, H - PAD);
  const maxStep = Math.max(1, ...steps), minStep = Math.min(maxStep, ...steps);
  const x = (step) => PAD + 8 + ((step - minStep) / Math.max(1, maxStep - minStep)) * (W - PAD - 24);
  return s("svg", { viewBox: `0 0 ${W} ${H}`, class: "plot", role: "img",
                    "aria-label": `${metric} over steps, one line per trial` },
    ...axes(`${metric} over steps`, ys, "step"),
    ...trials.filter((t) => (t.intermediate || []).length).map((t) => s("polyline", {
      points: t.intermediate.map((p) => `${x(p.step)},${y(p.value)}`).join(" "),
      class: `curve st-${t.state}`,
    }, s("title", {}, `trial ${t.number} (${t.state})`))));
}

const COLUMNS = [
  ["number", "#"], ["jobName", "Job"], ["state", "State"], ["parameters", "Parameters"],
  ["finalMetric", "Final"], ["bestMetric", "Best"], ["steps", "Steps"], ["reason", "Reason"],
];

function cell(t, key) {
  if (key === "parameters") return Object.entries(t.parameters).map(([k, v]) => `${k}=${v}`).join(" ");
  if (key === "steps") return (t.intermediate || []).length;
  return t[key];
}

function renderTable(trials) {
  const { sortBy, descending } = sweepView;
  const sorted = [...trials].sort((a, b) => {
    const va = cell(a, sortBy), vb = cell(b, sortBy);
    const order = va == null ? 1 : vb == null ? -1 : typeof va === "number" ? va - vb : String(va).localeCompare(String(vb));
    return descending ? -order : order;
  });
  render(byId("trials-head"), [sortBy, descending], () => [h("tr", {}, COLUMNS.map(([key, label]) =>
    h("th", { scope: "col", "aria-sort": key === sortBy ? (descending ? "descending" : "ascending") : null },
      h("button", { type: "button", "data-key": `sort-${key}`, onclick: () => {
        sweepView.descending = sweepView.sortBy === key ? !sweepView.descending : false;
        sweepView.sortBy = key;
        renderTable(trials);
      } }, label))))]);
  render(byId("trials-body"), [sorted], () => sorted.map((t) => h("tr", {},
    ...COLUMNS.map(([key]) => h("td", {}, ["finalMetric", "bestMetric"].includes(key) ? fmt(t[key])
                                                                                     : cell(t, key) ?? "–")))));
}

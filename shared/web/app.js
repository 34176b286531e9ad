// The web page: workspaces -> clusters (node states, scale settings, resize) -> experiments -> jobs
// (state, timeline, live stdout/stderr, outputs, terminate), event subscriptions and dead letters.
// It polls the public API every POLL_MS while the tab is visible; nothing it shows comes from
// anywhere else.

import { ApiError, call, credentials, fetchFrom, list, listSome, takeTokenFromFragment } from "./api.js";
import { byId, formatBytes, formatDuration, formatTime, h, part, render, setText } from "./dom.js";
import { refreshSweeps } from "./sweeps.js";

const POLL_MS = 1500;
const JOBS_PAGE = 100;
const FINAL = new Set(["succeeded", "failed"]);
const TAIL_CHARS = 64 * 1024; // what a log panel keeps of its file's end
const MAX_SQUARES = 256;
// node state, its count in nodeStateCounts, its letter in the picture
const NODE_STATES = [
  ["idle", "idleNodeCount", "I"], ["running", "runningNodeCount", "R"],
  ["preparing", "preparingNodeCount", "P"], ["leaving", "leavingNodeCount", "L"],
  ["unusable", "unusableNodeCount", "U"],
];

const view = {
  workspace: null, experiment: null, job: null,
  jobsShown: JOBS_PAGE,       // how many of the experiment's jobs the table shows ("Show more" adds a page)
  jobEnded: false,            // the selected job's end was seen (its files are read once more, then left)
  tails: {},                  // file name -> { offset, text, decoder }
  openFolders: new Set(),     // "<output directory id>/<path>" shown open
  openDeadLetters: new Set(), // ids of event subscriptions whose dead letters are shown
};
const clusterCards = new Map(); // cluster id -> { card, update }
let timer = null;
let busy = false;
let again = false;

// -- signing in ----------------------------------------------------------------------------------
function showSignIn(message) {
  clearTimeout(timer);
  byId("app").hidden = true;
  byId("sign-out").hidden = true;
  byId("sign-in").hidden = false;
  setText(byId("sign-in-error"), message || "");
  setText(byId("updated"), "");
  byId("subscription").value = credentials.subscription;
  byId("token").focus();
}

function showApp() {
  byId("sign-in").hidden = true;
  byId("app").hidden = false;
  byId("sign-out").hidden = false;
  refresh();
}

byId("sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  credentials.save(byId("token").value.trim(), byId("subscription").value.trim());
  byId("token").value = "";
  showApp();
  byId("main").focus();
});

byId("more-jobs").addEventListener("click", () => {
  view.jobsShown += JOBS_PAGE;
  refresh();
});

byId("sign-out").addEventListener("click", () => {
  credentials.forget();
  showSignIn("Signed out.");
});

function say(message) {
  const status = byId("status");
  status.textContent = "";
  requestAnimationFrame(() => { status.textContent = message; }); // a repeated message is spoken again
}

// -- polling -------------------------------------------------------------------------------------
async function refresh() {
  if (busy) { again = true; return; }
  busy = true;
  clearTimeout(timer);
  try {
    await refreshWorkspaces();
    if (view.workspace) await Promise.all([refreshClusters(), refreshExperiments(), refreshSubscriptions()]);
    if (view.experiment) await refreshJobs();
    await refreshSweeps(view.experiment, refresh);
    if (view.job) await refreshJob();
    setText(byId("updated"), `Updated at ${new Date().toLocaleTimeString()}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      busy = false;
      credentials.forget();
      showSignIn(`The service refused the token (401 ${error.code}): ${error.message} Sign in again.`);
      return;
    }
    setText(byId("updated"), `Could not refresh: ${error.message}`);
  }
  busy = false;
  if (again) { again = false; refresh(); return; }
  if (credentials.token && !document.hidden) timer = setTimeout(refresh, POLL_MS);
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden && credentials.token && !byId("app").hidden) refresh();
});

// -- workspaces ----------------------------------------------------------------------------------
async function refreshWorkspaces() {
  const sub = encodeURIComponent(credentials.subscription);
  const workspaces = await list(`/subscriptions/${sub}/providers/Microsoft.BatchAI/workspaces`);
  workspaces.sort((a, b) => a.id.localeCompare(b.id));
  if (view.workspace && !workspaces.some((w) => w.id === view.workspace)) chooseWorkspace(null, false);
  if (!view.workspace && workspaces.length) chooseWorkspace(workspaces[0].id, false);
  render(byId("workspaces"), [workspaces.map((w) => w.id), view.workspace], () => workspaces.map((w) =>
    h("li", {}, h("button", { type: "button", "data-key": w.id, "aria-current": w.id === view.workspace ? "true" : null,
                              onclick: () => chooseWorkspace(w.id) },
                  w.name, h("span", { class: "muted" }, ` · ${part(w.id, "resourceGroups")}`)))));
  byId("no-workspaces").hidden = workspaces.length > 0;
}

function chooseWorkspace(id, now = true) {
  if (id !== view.workspace) {
    view.workspace = id;
    chooseExperiment(null, false);
    for (const { card } of clusterCards.values()) card.remove();
    clusterCards.clear();
    view.openDeadLetters.clear();
  }
  byId("workspace").hidden = !id;
  byId("choose-workspace").hidden = Boolean(id);
  if (id) setText(byId("workspace-title"), `Workspace ${part(id, "workspaces")}`);
  if (now) refresh();
}

// -- clusters ------------------------------------------------------------------------------------
async function refreshClusters() {
  const clusters = await list(`${view.workspace}/clusters`);
  const container = byId("clusters");
  for (const cluster of clusters) {
    if (!clusterCards.has(cluster.id)) {
      const made = clusterCard(cluster);
      clusterCards.set(cluster.id, made);
      container.append(made.card);
    }
    clusterCards.get(cluster.id).update(cluster);
  }
  for (const [id, { card }] of clusterCards) {
    if (!clusters.some((c) => c.id === id)) { card.remove(); clusterCards.delete(id); }
  }
  byId("no-clusters").hidden = clusters.length > 0;
}

function clusterCard(cluster) {
  const key = cluster.id.replace(/[^A-Za-z0-9]/g, "-");
  const summary = h("p", { class: "summary" });
  const picture = h("div", { class: "nodes", role: "img" });
  const legend = h("ul", { class: "legend", "aria-label": `Node states of ${cluster.name}` });
  const settings = h("dl", { class: "facts" });
  const problems = h("ul", { class: "errors" });
  const formHolder = h("div", {});
  const card = h("article", { class: "cluster", "aria-labelledby": `${key}-title` },
                 h("h4", { id: `${key}-title` }, `Cluster ${cluster.name}`),
                 summary, picture, legend, settings, problems, formHolder);
  let mode = null;
  let inputs = {};

  function update(c) {
    const p = c.properties || {};
    const counts = p.nodeStateCounts || {};
    const scale = p.scaleSettings || {};
    const total = NODE_STATES.reduce((sum, [, field]) => sum + (counts[field] || 0), 0);
    setText(summary, `${p.vmSize || ""} · ${p.vmPriority || "dedicated"} · allocation ${p.allocationState || "?"} · ` +
                     `${p.currentNodeCount ?? total} node${(p.currentNodeCount ?? total) === 1 ? "" : "s"}`);
    const described = NODE_STATES.filter(([, field]) => counts[field]).map(([state, field]) => `${counts[field]} ${state}`);
    picture.setAttribute("aria-label", total ? `${total} node${total === 1 ? "" : "s"}: ${described.join(", ")}`
                                             : "No nodes");
    render(picture, counts, () => {
      const squares = NODE_STATES.flatMap(([state, field, letter]) =>
        Array.from({ length: counts[field] || 0 }, () => h("span", { class: `node s-${state}` }, letter)));
      return squares.length > MAX_SQUARES ? [...squares.slice(0, MAX_SQUARES), h("span", { class: "more" }, "…")] : squares;
    });
    render(legend, counts, () => NODE_STATES.map(([state, field, letter]) =>
      h("li", {}, h("span", { class: `swatch s-${state}`, "aria-hidden": "true" }, letter), `${state}: ${counts[field] || 0}`)));
    const manual = scale.manual;
    const auto = scale.autoScale;
    const facts = manual
      ? [["Scaling", "manual"], ["Target nodes", manual.targetNodeCount],
         ["When shrinking", manual.nodeDeallocationOption || "requeue"]]
      : auto ? [["Scaling", "auto-scale"], ["Minimum nodes", auto.minimumNodeCount], ["Maximum nodes", auto.maximumNodeCount],
                ["Initial nodes", auto.initialNodeCount ?? 0]] : [["Scaling", "none"]];
    render(settings, facts, () => facts.flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
    const errors = p.errors || [];
    render(problems, errors, () => errors.map((e) => h("li", {}, `${e.code}: ${e.message}`)));
    const wanted = auto ? "auto" : "manual";
    if (wanted !== mode) {
      mode = wanted;
      const made = resizeForm(c, mode);
      inputs = made.inputs;
      formHolder.replaceChildren(made.form);
    }
    const current = auto ? { min: auto.minimumNodeCount, max: auto.maximumNodeCount } : { target: manual?.targetNodeCount ?? 0 };
    for (const [name, input] of Object.entries(inputs)) {
      if (document.activeElement !== input && !input.dataset.edited) input.value = current[name];
    }
  }

  function resizeForm(c, how) {
    const field = (name, label) => {
      const input = h("input", { id: `${key}-${name}`, name, type: "number", min: "0", step: "1", required: true,
                                 oninput: () => { input.dataset.edited = "yes"; } });
      return [input, h("div", { class: "field" }, h("label", { for: input.id }, label), input)];
    };
    const parts = how === "auto"
      ? { min: field("min", "Minimum node count"), max: field("max", "Maximum node count") }
      : { target: field("target", "Target node count") };
    const form = h("form", { class: "resize", "aria-label": `Resize ${c.name}` },
                   ...Object.values(parts).map(([, div]) => div),
                   h("button", { type: "submit" }, how === "auto" ? "Change auto-scale" : "Resize"));
    const inputs = Object.fromEntries(Object.entries(parts).map(([name, [input]]) => [name, input]));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const n = Object.fromEntries(Object.entries(inputs).map(([name, input]) => [name, Number(input.value)]));
      const scaleSettings = how === "auto"
        ? { autoScale: { minimumNodeCount: n.min, maximumNodeCount: n.max } }
        : { manual: { targetNodeCount: n.target } };
      try {
        await call("PATCH", c.id, { body: { properties: { scaleSettings } } });
        for (const input of Object.values(inputs)) delete input.dataset.edited;
        say(how === "auto" ? `Cluster ${c.name} now scales between ${n.min} and ${n.max} nodes.`
                           : `Cluster ${c.name} is resizing to ${n.target} node${n.target === 1 ? "" : "s"}.`);
        refresh();
      } catch (error) {
        say(`Could not resize ${c.name}: ${error.message}`);
      }
    });
    return { form, inputs };
  }

  return { card, update };
}

// -- experiments and jobs ------------------------------------------------------------------------
async function refreshExperiments() {
  const experiments = await list(`${view.workspace}/experiments`);
  experiments.sort((a, b) => a.name.localeCompare(b.name));
  if (view.experiment && !experiments.some((e) => e.id === view.experiment)) chooseExperiment(null, false);
  render(byId("experiments"), [experiments.map((e) => e.id), view.experiment], () => experiments.map((e) =>
    h("li", {}, h("button", { type: "button", "data-key": e.id, "aria-current": e.id === view.experiment ? "true" : null,
                              onclick: () => chooseExperiment(e.id) }, `Experiment ${e.name}`))));
  byId("no-experiments").hidden = experiments.length > 0;
}

function chooseExperiment(id, now = true) {
  if (id !== view.experiment) {
    view.experiment = id;
    view.jobsShown = JOBS_PAGE;
    chooseJob(null, false);
  }
  byId("jobs-area").hidden = !id;
  if (id) setText(byId("jobs-caption"), `Jobs of experiment ${part(id, "experiments")}`);
  if (now) refresh();
}

async function refreshJobs() {
  // One page of the experiment's jobs (in the API's order, by name), more on request: a refresh
  // costs the same with 100,000 jobs as with 10.
  const { items: jobs, more } = await listSome(`${view.experiment}/jobs`,
                                               { limit: view.jobsShown, pageSize: Math.min(view.jobsShown, 1000) });
  const moreButton = byId("more-jobs");
  moreButton.hidden = !more;
  setText(moreButton, `Show more jobs (${jobs.length} shown)`);
  jobs.sort((a, b) => (b.properties?.creationTime || "").localeCompare(a.properties?.creationTime || ""));
  if (view.job && !jobs.some((j) => j.id === view.job)) chooseJob(null, false);
  const rows = jobs.map((j) => {
    const p = j.properties || {};
    return [j.id, j.name, p.executionState, p.schedulingPriority, p.nodeCount, p.creationTime, p.executionInfo?.exitCode];
  });
  render(byId("jobs-body"), [rows, view.job], () => rows.map(([id, name, state, priority, nodes, created, exit]) =>
    h("tr", { class: id === view.job ? "chosen" : null },
      h("th", { scope: "row" }, h("button", { type: "button", "data-key": id, "aria-current": id === view.job ? "true" : null,
                                              onclick: () => chooseJob(id) }, name)),
      h("td", {}, stateBadge(state)), h("td", {}, priority || "normal"), h("td", {}, nodes),
      h("td", {}, formatTime(created)), h("td", {}, exit ?? "–"))));
  byId("no-jobs").hidden = jobs.length > 0;
}

function stateBadge(state) {
  return h("span", { class: `state st-${state || "unknown"}` }, state || "unknown");
}

function chooseJob(id, now = true) {
  if (id !== view.job) {
    view.job = id;
    view.jobEnded = false;
    view.tails = {};
    view.openFolders.clear();
    for (const pre of [byId("stdout"), byId("stderr")]) pre.textContent = "";
    setText(byId("job-state"), "");
  }
  byId("job").hidden = !id;
  if (id) setText(byId("job-title"), `Job ${part(id, "jobs")}`);
  if (now) refresh();
}

async function refreshJob() {
  let job;
  try {
    job = await call("GET", view.job);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) { chooseJob(null, false); return; }
    throw error;
  }
  const p = job.properties || {};
  const state = p.executionState || "unknown";
  const events = await list(`${job.id}/events`);
  setText(byId("job-state"), `Job ${job.name} ${FINAL.has(state) ? "" : "is "}${state}.`);
  byId("job-state").className = `job-state st-${state}`;
  byId("terminate").disabled = FINAL.has(state) || state === "terminating";
  showFacts(job, events);
  showTimeline(events, state);
  if (!view.jobEnded) {
    await refreshOutputs(job);
    view.jobEnded = FINAL.has(state); // after the end, read once more, then stop
  }
}

byId("terminate").addEventListener("click", async () => {
  const name = part(view.job, "jobs");
  if (!window.confirm(`Terminate the job ${name}? Its processes are stopped and it ends as failed.`)) return;
  try {
    await call("POST", `${view.job}/terminate`);
    say(`Terminating the job ${name}.`);
    refresh();
  } catch (error) {
    say(`Could not terminate ${name}: ${error.message}`);
  }
});

function showFacts(job, events) {
  const p = job.properties || {};
  const info = p.executionInfo || {};
  const attempts = new Set(events.map((e) => e.data.attempt).filter((a) => a > 0)).size;
  const facts = [
    ["Cluster", part(p.cluster?.id || "", "clusters")], ["Nodes", p.nodeCount], ["Priority", p.schedulingPriority || "normal"],
    ["Toolkit", p.toolType], ["Created", formatTime(p.creationTime)], ["Started", formatTime(info.startTime)],
    ["Ended", formatTime(info.endTime)], ["Exit code", info.exitCode ?? "–"], ["Attempts", attempts],
    ...(info.errors || []).map((e) => ["Error", `${e.code}: ${e.message}`]),
  ];
  render(byId("job-facts"), facts, () => facts.flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
}

function showTimeline(events, state) {
  const ordered = [...events].sort((a, b) => Number(a.sequence) - Number(b.sequence));
  render(byId("timeline"), ordered.map((e) => e.id), () => ordered.map((e) => {
    const d = e.data;
    const details = [d.previousState ? `from ${d.previousState}` : "created", d.attempt ? `attempt ${d.attempt}` : null,
                     d.exitCode !== null && d.exitCode !== undefined ? `exit code ${d.exitCode}` : null].filter(Boolean);
    return h("li", {}, h("time", { datetime: e.time }, formatTime(e.time)), " ", stateBadge(d.state),
             ` ${details.join(", ")}`,
             d.errors?.length ? h("ul", { class: "errors" }, d.errors.map((x) => h("li", {}, `${x.code}: ${x.message}`))) : null);
  }));
  // The same events as a bar: one segment per state, as long as the job stayed in it.
  const bar = byId("timeline-bar");
  const now = Date.now();
  const spans = ordered.map((e, i) => {
    const start = Date.parse(e.time);
    const end = i + 1 < ordered.length ? Date.parse(ordered[i + 1].time) : FINAL.has(state) ? start : now;
    return { state: e.data.state, ms: Math.max(0, end - start) };
  });
  bar.setAttribute("aria-label", spans.length ? `Time in each state: ${spans.map((s, i) =>
    i + 1 === spans.length && FINAL.has(s.state) ? s.state : `${s.state} ${formatDuration(s.ms)}`).join(", ")}`
                                              : "No events yet");
  const total = spans.reduce((sum, s) => sum + s.ms, 0) || 1;
  bar.replaceChildren(...spans.map((s) => {
    const segment = h("span", { class: `segment st-${s.state}` });
    segment.style.flexGrow = String(Math.max(s.ms / total, 0.02)); // CSSOM, which the page's CSP allows
    return segment;
  }));
}

// -- outputs and logs ----------------------------------------------------------------------------
async function listFiles(jobId, directoryId, path) {
  const query = { outputdirectoryid: directoryId, ...(path ? { directory: path } : {}) };
  return list(`${jobId}/listOutputFiles`, { method: "POST", query });
}

async function refreshOutputs(job) {
  const directories = [["stdouterr", "Standard output and error"],
    ...(job.properties.outputDirectories || []).map((d) => [d.id, `Output directory ${d.id}`])];
  const trees = await Promise.all(directories.map(async ([id, label]) => ({ id, label, entries: await folder(job.id, id, "") })));
  const logs = trees[0].entries;
  await Promise.all(["stdout", "stderr"].map((stream) => {
    const name = masterLog(logs, stream);
    byId(`${stream}-title`).textContent = name;
    return tail(logs, name, byId(stream));
  }));
  const withoutUrls = (entries) => entries.map((e) => [e.name, e.fileType, size(e), e.children && withoutUrls(e.children)]);
  const changed = render(byId("outputs"), trees.map((t) => [t.id, withoutUrls(t.entries)]), () => trees.map((t) =>
    h("section", { class: "output", "aria-label": t.label }, h("h5", {}, t.label),
      t.entries.length ? fileList(t.id, "", t.entries) : h("p", { class: "empty" }, "Nothing yet."))));
  if (!changed) { // the same files: only their (newly signed) links change
    const links = new Map(trees.flatMap(function flat(t) {
      return t.entries.flatMap((e) => [[e.key, e.downloadUrl], ...flat({ entries: e.children || [] })]);
    }));
    for (const a of byId("outputs").querySelectorAll("a[data-key]")) if (links.get(a.dataset.key)) a.href = links.get(a.dataset.key);
  }
}

// A folder's entries, with the entries of its open sub-folders as `children`.
async function folder(jobId, directoryId, path) {
  const entries = await listFiles(jobId, directoryId, path);
  entries.sort((a, b) => a.name.localeCompare(b.name));
  return Promise.all(entries.map(async (e) => {
    const inner = path ? `${path}/${e.name}` : e.name;
    const key = `${directoryId}/${inner}`;
    const open = e.fileType === "directory" && view.openFolders.has(key);
    return { ...e, key, path: inner, children: open ? await folder(jobId, directoryId, inner) : undefined };
  }));
}

function fileList(directoryId, path, entries) {
  return h("ul", { class: "files" }, entries.map((e) => {
    if (e.fileType === "directory") {
      const open = Boolean(e.children);
      return h("li", {}, h("button", { type: "button", class: "folder", "data-key": e.key, "aria-expanded": String(open),
                                       onclick: () => toggleFolder(e.key) }, `${e.name}/`),
               open ? (e.children.length ? fileList(directoryId, e.path, e.children) : h("p", { class: "empty" }, "Empty."))
                    : null);
    }
    return h("li", {}, h("a", { href: e.downloadUrl, download: e.name, "data-key": e.key }, e.name),
             h("span", { class: "muted" }, ` ${formatBytes(size(e))}`));
  }));
}

const size = (entry) => entry.properties?.contentLength;

function toggleFolder(key) {
  if (view.openFolders.has(key)) view.openFolders.delete(key); else view.openFolders.add(key);
  view.jobEnded = false; // read the files again, once
  refresh();
}

// Show the end of a log file, reading only the bytes it gained since the last round.
// The master task's output (reference/ENVIRONMENT.md, "Per-task log files"): stdout.txt, or the first
// task's own file: stdout-wk-0.txt (TensorFlow), stdout-0.txt (PyTorch, Caffe2).
function masterLog(entries, stream) {
  const names = [`${stream}.txt`, `${stream}-wk-0.txt`, `${stream}-0.txt`];
  return names.find((n) => entries.some((e) => e.name === n)) || names[0];
}

async function tail(entries, name, pre) {
  const entry = entries.find((e) => e.name === name && e.downloadUrl);
  if (!entry) return;
  let t = view.tails[name];
  if (!t || (size(entry) ?? Infinity) < t.offset) { // new, or written anew (another attempt)
    t = view.tails[name] = { offset: 0, text: "", decoder: new TextDecoder() };
  }
  if (size(entry) === t.offset) return; // nothing new
  const bytes = await fetchFrom(entry.downloadUrl, t.offset);
  if (!bytes.length) return;
  t.offset += bytes.length;
  t.text = (t.text + t.decoder.decode(bytes, { stream: true })).slice(-TAIL_CHARS);
  const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
  pre.textContent = t.text;
  if (atEnd) pre.scrollTop = pre.scrollHeight;
}

// -- event subscriptions -------------------------------------------------------------------------
async function refreshSubscriptions() {
  const subscriptions = await list(`${view.workspace}/eventSubscriptions`);
  subscriptions.sort((a, b) => a.name.localeCompare(b.name));
  const dead = {};
  await Promise.all(subscriptions.filter((s) => view.openDeadLetters.has(s.id)).map(async (s) => {
    dead[s.id] = await list(`${s.id}/deadLetters`);
  }));
  render(byId("subscriptions"), [subscriptions, dead], () => subscriptions.length ? [subscriptionsTable(subscriptions, dead)] : []);
  byId("no-subscriptions").hidden = subscriptions.length > 0;
}

function subscriptionsTable(subscriptions, dead) {
  const rows = subscriptions.flatMap((s) => {
    const p = s.properties || {};
    const open = view.openDeadLetters.has(s.id);
    const panelId = `dead-${s.name}`;
    const row = h("tr", {},
      h("th", { scope: "row" }, s.name), h("td", { class: "url" }, p.destination?.endpointUrl || ""),
      h("td", {}, (p.filter?.eventTypes || []).map((t) => t.replace("Microsoft.BatchAI.", "")).join(", ") || "all"),
      h("td", {}, (p.filter?.experiments || []).join(", ") || "all"), h("td", {}, p.hasSecret ? "yes" : "no"),
      h("td", {}, h("button", { type: "button", "data-key": `dead:${s.id}`, "aria-expanded": String(open),
                                "aria-controls": open ? panelId : null, onclick: () => toggleDeadLetters(s.id) },
                    `Dead letters of ${s.name}`)));
    if (!open) return [row];
    const letters = dead[s.id] || [];
    return [row, h("tr", { id: panelId }, h("td", { colspan: "6" }, letters.length
      ? h("table", { class: "dead" }, h("caption", {}, `Dead letters of ${s.name}`),
          h("thead", {}, h("tr", {}, ["Event", "Job", "Attempts", "Last attempt", "Reason"].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, letters.map((d) => h("tr", {},
            h("td", {}, d.eventType.replace("Microsoft.BatchAI.", "")), h("td", {}, part(d.source, "jobs")),
            h("td", {}, d.attempts), h("td", {}, formatTime(d.lastAttemptTime)),
            h("td", {}, d.reason)))))
      : h("p", { class: "empty" }, `No dead letters for ${s.name}.`)))];
  });
  return h("table", { class: "subscriptions" }, h("caption", { class: "visually-hidden" }, "Event subscriptions"),
    h("thead", {}, h("tr", {}, ["Name", "Endpoint", "Events", "Experiments", "Signed", "Dead letters"].map((c) =>
      h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows));
}

function toggleDeadLetters(id) {
  if (view.openDeadLetters.has(id)) view.openDeadLetters.delete(id); else view.openDeadLetters.add(id);
  refresh();
}

// -- start ---------------------------------------------------------------------------------------
takeTokenFromFragment();
if (credentials.token) showApp(); else showSignIn("");

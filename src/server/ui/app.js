// The JamJet UI: reads and acts through the REST API of the server that
// serves it. Every value from the API reaches the page as text
// (textContent, text nodes), never as markup.
"use strict";

const KEY_STORE = "jamjet.apiKey";
const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const STATUSES = ["running", "waiting", "completed", "failed", "cancelled"];
const PAGE = 50;
const LIST_POLL_MS = 2000;
const EXEC_POLL_MS = 1000;
const MAX_LANES = 32;

let timer = null; // the live-update timer of the current view
let generation = 0; // bumped on every navigation: late answers of an old view are dropped
let following = null; // the AbortController of the execution view's event stream

// ---- DOM helpers -------------------------------------------------------

/** An element with attributes (strings, or handlers for `on...`) and children (nodes or text). */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function pre(value) {
  return el("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

function notice(text, kind) {
  const n = document.getElementById("notice");
  if (!text) {
    n.hidden = true;
    n.textContent = "";
    return;
  }
  n.hidden = false;
  n.className = kind || "info";
  n.textContent = text;
}

function fmtTime(ms) {
  if (!ms) return "";
  return new Date(ms).toLocaleString();
}

function fmtDuration(ms) {
  if (ms === null || ms === undefined || ms < 0) return "";
  if (ms < 10 && !Number.isInteger(ms)) return ms.toFixed(1) + " ms";
  if (ms < 1000) return Math.round(ms) + " ms";
  if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + " s";
  const m = Math.floor(ms / 60000);
  if (m < 60) return m + " min " + Math.round((ms % 60000) / 1000) + " s";
  return Math.floor(m / 60) + " h " + (m % 60) + " min";
}

function fmtCost(usage) {
  if (!usage) return "";
  const tokens = (usage.input_tokens || 0) + (usage.output_tokens || 0);
  if (!tokens && !usage.cost_usd) return "—";
  return "$" + (usage.cost_usd || 0).toFixed(4) + " · " + tokens + " tok";
}

function badge(status) {
  return el("span", { class: "badge s-" + status, "data-status": status }, status);
}

// ---- The API -----------------------------------------------------------

function apiKey() {
  return sessionStorage.getItem(KEY_STORE) || "";
}

class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || "HTTP " + status);
    this.status = status;
    this.code = e.code || "";
    this.details = e.details || null;
  }
}

/** A call to the REST API with the API key, if one is set; JSON in and out. */
async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const key = apiKey();
  if (key) headers.Authorization = "Bearer " + key;
  const init = { method, headers, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  let data = null;
  try {
    data = await res.json();
  } catch (_) {
    data = null;
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

/** Show what went wrong; say plainly when a key is what is missing. */
function showError(err) {
  if (err instanceof ApiError && err.status === 401) {
    document.body.dataset.needsKey = "true";
    notice(
      apiKey()
        ? "This server did not accept the API key: enter another above."
        : "This server needs an API key: enter it above.",
      "error",
    );
    return;
  }
  if (err instanceof ApiError && err.status === 403) {
    notice("Not allowed: " + err.message, "error");
    return;
  }
  notice(err.message || String(err), "error");
}

// ---- Routing -----------------------------------------------------------

function route() {
  generation += 1;
  if (timer) clearTimeout(timer);
  timer = null;
  if (following) following.abort();
  following = null;
  notice("");
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, qs] = hash.split("?");
  const params = new URLSearchParams(qs || "");
  const m = path.match(/^\/executions\/([^/]+)$/);
  if (m) executionView(decodeURIComponent(m[1]), generation);
  else listView(params, generation);
}

function setView(...nodes) {
  document.getElementById("view").replaceChildren(...nodes);
}

// ---- The executions list -----------------------------------------------

function listView(params, gen) {
  const status = params.get("status") || "";
  const workflow = params.get("workflow") || "";
  const search = params.get("q") || "";
  const cursors = []; // the cursor of each page shown before this one
  let cursor = null;
  let live = true;

  const statusSel = el("select", { id: "f-status", name: "status" }, el("option", { value: "" }, "any status"));
  for (const s of STATUSES) statusSel.append(el("option", { value: s }, s));
  statusSel.value = status;
  const workflowIn = el("input", { id: "f-workflow", name: "workflow", list: "workflows", placeholder: "any workflow" });
  workflowIn.value = workflow;
  const workflows = el("datalist", { id: "workflows" });
  const searchIn = el("input", { id: "f-search", name: "q", placeholder: "execution id or idempotency key" });
  searchIn.value = search;
  const liveBox = el("input", { id: "f-live", type: "checkbox", checked: true });
  const apply = () => {
    const p = new URLSearchParams();
    if (statusSel.value) p.set("status", statusSel.value);
    if (workflowIn.value.trim()) p.set("workflow", workflowIn.value.trim());
    if (searchIn.value.trim()) p.set("q", searchIn.value.trim());
    const next = "#/" + (p.toString() ? "?" + p.toString() : "");
    if (location.hash === next) route();
    else location.hash = next;
  };
  const form = el(
    "form",
    { class: "filters", onsubmit: (e) => (e.preventDefault(), apply()) },
    el("label", {}, "Status ", statusSel),
    el("label", {}, "Workflow ", workflowIn),
    workflows,
    el("label", {}, "Search ", searchIn),
    el("button", { type: "submit" }, "Filter"),
    el("label", { class: "live" }, liveBox, " live"),
  );
  statusSel.addEventListener("change", apply);
  liveBox.addEventListener("change", () => {
    live = liveBox.checked;
    if (live) load();
  });

  const tbody = el("tbody", { id: "executions" });
  const table = el(
    "table",
    { class: "list" },
    el(
      "thead",
      {},
      el("tr", {}, ...["Execution", "Workflow", "Status", "Started", "Duration", "Cost"].map((h) => el("th", {}, h))),
    ),
    tbody,
  );
  const newer = el("button", { type: "button", disabled: true }, "‹ Newer");
  const older = el("button", { type: "button", disabled: true }, "Older ›");
  const info = el("span", { class: "muted" });
  newer.addEventListener("click", () => {
    cursor = cursors.pop() || null;
    load();
  });
  let nextCursor = null;
  older.addEventListener("click", () => {
    cursors.push(cursor);
    cursor = nextCursor;
    load();
  });
  setView(el("h1", {}, "Executions"), form, table, el("div", { class: "pager" }, newer, older, info));

  api("GET", "/workflows")
    .then((body) => {
      const ids = new Set((body.workflows || []).map((w) => w.id || w.workflow_id));
      for (const id of ids) if (id) workflows.append(el("option", { value: id }));
    })
    .catch(() => {});

  function row(x) {
    const end = TERMINAL.has(x.status) ? x.updated_ms : Date.now();
    return el(
      "tr",
      { "data-id": x.id, "data-status": x.status },
      el("td", {}, el("a", { href: "#/executions/" + encodeURIComponent(x.id), class: "mono" }, x.id)),
      el("td", {}, x.workflow_id + " ", el("span", { class: "muted" }, x.version),
        x.parent ? el("div", { class: "muted" }, "child of ", el("a", { href: "#/executions/" + encodeURIComponent(x.parent), class: "mono" }, x.parent)) : ""),
      el("td", {}, badge(x.status)),
      el("td", {}, fmtTime(x.created_ms)),
      el("td", {}, fmtDuration(end - x.created_ms)),
      el("td", {}, fmtCost(x.usage)),
    );
  }

  async function load() {
    if (timer) clearTimeout(timer);
    timer = null;
    const p = new URLSearchParams({ order: "desc", limit: String(PAGE), usage: "true" });
    if (status) p.set("status", status);
    if (workflow) p.set("workflow", workflow);
    if (cursor) p.set("cursor", cursor);
    try {
      let rows;
      if (search) {
        rows = await searchRows(search, p);
        nextCursor = null;
      } else {
        const page = await api("GET", "/executions?" + p.toString());
        rows = page.executions;
        nextCursor = page.next_cursor || null;
      }
      if (gen !== generation) return;
      delete document.body.dataset.needsKey;
      notice("");
      tbody.replaceChildren(...rows.map(row));
      if (!rows.length) tbody.append(el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No executions.")));
      newer.disabled = cursors.length === 0;
      older.disabled = !nextCursor;
      info.textContent = rows.length + " shown" + (live && !cursor ? " · live" : "");
      table.dataset.loaded = "true";
    } catch (err) {
      if (gen !== generation) return;
      showError(err);
    }
    if (gen === generation && live && !cursor) timer = setTimeout(load, LIST_POLL_MS);
  }

  /** An id shows that execution; anything else is looked up as an idempotency key. */
  async function searchRows(q, p) {
    p.set("key", q);
    const byKey = await api("GET", "/executions?" + p.toString());
    if (byKey.executions.length) return byKey.executions;
    try {
      const x = await api("GET", "/executions/" + encodeURIComponent(q));
      return [{ ...x, version: x.version }];
    } catch (err) {
      if (err instanceof ApiError && (err.status === 400 || err.status === 404)) return [];
      if (err instanceof ApiError && err.status === 410) {
        notice("Execution " + q + " was pruned: " + err.message, "info");
        return [];
      }
      throw err;
    }
  }

  load();
}

// ---- One execution -----------------------------------------------------

function executionView(id, gen) {
  const selected = { key: null }; // "node#visit" of the row whose details show
  const expanded = new Set(); // "node#visit" of fan-outs shown as lanes
  const lanes = new Map(); // child id -> its timeline
  let exec = null;
  let tl = null;

  const head = el("section", { class: "exec-head" });
  const actions = el("section", { class: "actions", id: "actions" });
  const live = el("section", { class: "live", id: "live", hidden: true });
  const streams = new Map(); // one streamed reply: "branch/node#visit.attempt" -> its text node
  let actionsFor = null; // what the actions panel was drawn for
  const chart = el("section", { class: "timeline", id: "timeline" });
  const details = el("section", { class: "details", id: "details" });
  setView(
    el("p", {}, el("a", { href: "#/" }, "‹ Executions")),
    head,
    actions,
    live,
    el("h2", {}, "Timeline"),
    chart,
    details,
  );

  async function load() {
    if (timer) clearTimeout(timer);
    timer = null;
    try {
      const [x, t] = await Promise.all([
        api("GET", "/executions/" + encodeURIComponent(id)),
        api("GET", "/executions/" + encodeURIComponent(id) + "/timeline"),
      ]);
      for (const key of expanded) await loadLanes(t, key);
      if (gen !== generation) return;
      delete document.body.dataset.needsKey;
      exec = x;
      tl = t;
      draw();
      if (!TERMINAL.has(x.status)) {
        timer = setTimeout(load, EXEC_POLL_MS);
        if (!following) follow();
      } else {
        if (following) following.abort();
        live.hidden = true;
        live.replaceChildren();
        streams.clear();
      }
    } catch (err) {
      if (gen !== generation) return;
      if (err instanceof ApiError && err.status === 410) return pruned(err);
      if (err instanceof ApiError && err.status === 404) {
        head.replaceChildren(el("h1", {}, "Execution ", el("span", { class: "mono" }, id)));
        notice(err.message, "error");
        return;
      }
      showError(err);
      if (err instanceof ApiError && err.status === 401) return;
      timer = setTimeout(load, EXEC_POLL_MS * 3);
    }
  }

  // The execution's event stream (SSE read through fetch, which can send
  // the API key): each durable record redraws at once, and a model node
  // with `stream: true` (its branches' too) shows its reply as it is
  // written. Polling goes on beside it, so a dropped stream loses nothing.
  async function follow() {
    const ctrl = new AbortController();
    following = ctrl;
    try {
      const headers = { Accept: "text/event-stream" };
      const key = apiKey();
      if (key) headers.Authorization = "Bearer " + key;
      // From the last record drawn: the history before it is on the page.
      const after = tl && tl.last_seq ? "?after=" + tl.last_seq : "";
      const url = "/executions/" + encodeURIComponent(id) + "/events/stream" + after;
      const res = await fetch(url, { headers, cache: "no-store", credentials: "omit", signal: ctrl.signal });
      if (!res.ok || !res.body) return;
      live.dataset.following = "true";
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done || gen !== generation) break;
        buf += value;
        let at;
        while ((at = buf.search(/\r?\n\r?\n/)) >= 0) {
          const block = buf.slice(0, at);
          buf = buf.slice(at).replace(/^\r?\n\r?\n/, "");
          sseEvent(block);
        }
      }
    } catch (_) {
      // Aborted (navigation, the end) or dropped: the polling goes on.
    } finally {
      if (following === ctrl) following = null;
      delete live.dataset.following;
    }
  }

  function sseEvent(block) {
    let event = "message";
    let data = "";
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith(":")) continue;
      const i = line.indexOf(":");
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
      if (field === "event") event = value;
      else if (field === "data") data += (data ? "\n" : "") + value;
    }
    if (event === "token") {
      try {
        token(JSON.parse(data));
      } catch (_) {
        // Not a token: nothing to show.
      }
    } else {
      // A record (or the end): redraw now rather than at the next poll.
      if (timer) clearTimeout(timer);
      timer = setTimeout(load, 50);
    }
  }

  function token(t) {
    const where = t.inside ? t.inside.parent_node + " branch " + t.inside.branch + " / " : "";
    const key = (t.inside ? t.inside.execution : "") + "/" + t.node + "#" + t.visit + "." + t.attempt;
    let text = streams.get(key);
    if (!text) {
      text = document.createTextNode("");
      streams.set(key, text);
      const label = where + t.node + (t.visit > 1 ? " #" + t.visit : "") +
        (t.restarted ? " (streamed again, attempt " + t.attempt + ")" : "");
      if (live.hidden) {
        live.hidden = false;
        live.append(el("h2", {}, "Streaming"));
      }
      live.append(el("div", { class: "stream", "data-node": t.node }, el("h4", {}, label), el("pre", {}, text)));
    }
    text.appendData(t.text);
  }

  function pruned(err) {
    const d = err.details || {};
    head.replaceChildren(
      el("h1", {}, "Execution ", el("span", { class: "mono" }, id)),
      el(
        "div",
        { class: "pruned", id: "pruned" },
        el("strong", {}, "This execution was pruned."),
        " It ended ",
        badge(d.status || "unknown"),
        d.workflow_id ? " (workflow " + d.workflow_id + ")" : "",
        d.pruned_ms ? ", and its history (" + (d.events || 0) + " events) was removed on " + fmtTime(d.pruned_ms) : "",
        ". Nothing more can be shown.",
      ),
    );
    actions.replaceChildren();
    chart.replaceChildren();
    details.replaceChildren();
  }

  async function loadLanes(t, key) {
    const v = t.nodes.find((n) => n.node + "#" + n.visit === key);
    if (!v || !v.branches) return;
    for (const b of v.branches.slice(0, MAX_LANES)) {
      const done = lanes.get(b.child);
      if (done && TERMINAL.has(b.outcome || "")) continue;
      try {
        lanes.set(b.child, await api("GET", "/executions/" + encodeURIComponent(b.child) + "/timeline"));
      } catch (_) {
        lanes.set(b.child, null);
      }
    }
  }

  function draw() {
    drawHead();
    drawActions();
    drawChart();
    drawDetails();
  }

  function drawHead() {
    const end = TERMINAL.has(exec.status) ? exec.updated_ms : Date.now();
    const facts = el(
      "dl",
      { class: "facts" },
      el("dt", {}, "Workflow"),
      el("dd", {}, exec.workflow_id + " " + exec.version),
      el("dt", {}, "Started"),
      el("dd", {}, fmtTime(exec.created_ms)),
      el("dt", {}, "Duration"),
      el("dd", {}, fmtDuration(end - exec.created_ms)),
      el("dt", {}, "Cost"),
      el("dd", {}, fmtCost(exec.usage)),
    );
    if (exec.key) facts.append(el("dt", {}, "Key"), el("dd", { class: "mono" }, exec.key));
    if (tl.fork) {
      facts.append(
        el("dt", {}, "Forked from"),
        el(
          "dd",
          {},
          el("a", { href: "#/executions/" + encodeURIComponent(tl.fork.from), class: "mono" }, tl.fork.from),
          " at " + tl.fork.node + " #" + tl.fork.visit,
        ),
      );
    }
    const kids = [el("h1", {}, "Execution ", el("span", { class: "mono" }, exec.id), " ", badge(exec.status)), facts];
    if (exec.error) kids.push(el("p", { class: "error-text" }, exec.error));
    head.replaceChildren(...kids);
  }

  function drawActions() {
    // Redrawn only when what it offers changes: a redraw under a person
    // typing into it would take the field away.
    const offered = JSON.stringify([exec.status, exec.waiting]);
    if (offered === actionsFor) return;
    actionsFor = offered;
    if (TERMINAL.has(exec.status)) {
      actions.replaceChildren();
      return;
    }
    const parts = [el("h2", {}, "Actions")];
    for (const w of exec.waiting || []) {
      const target = w.id || exec.id;
      if (w.kind === "approval") parts.push(approvalForm(target, w));
      else if (w.kind === "event") parts.push(signalForm(target, w.event || ""));
      else parts.push(el("p", { class: "muted" }, "Waiting for a timer at " + w.node + " until " + fmtTime(w.deadline_ms)));
    }
    if (!(exec.waiting || []).some((w) => w.kind === "event")) parts.push(signalForm(exec.id, ""));
    parts.push(cancelForm());
    const focused = document.activeElement && actions.contains(document.activeElement);
    if (!focused) actions.replaceChildren(...parts);
    else actionsFor = null; // drawn once the person is done with it
  }

  function approvalForm(target, w) {
    const comment = el("input", { name: "comment", placeholder: "comment (optional)" });
    const by = el("input", { name: "by", placeholder: "your name", value: "ui" });
    const decide = (approved) => async () => {
      const body = { approved, by: by.value || "ui", node: w.node };
      if (comment.value) body.comment = comment.value;
      if (w.call) body.call = w.call;
      await act(() => api("POST", "/executions/" + encodeURIComponent(target) + "/approve", body),
        approved ? "Approved." : "Rejected.");
    };
    return el(
      "div",
      { class: "approval", "data-node": w.node },
      el("h3", {}, "Approval at " + w.node + (w.call ? " (call " + w.call + ")" : "")),
      el("p", { class: "prompt" }, w.prompt || "(no prompt)"),
      el("div", { class: "row" }, by, comment,
        el("button", { type: "button", class: "approve", onclick: decide(true) }, "Approve"),
        el("button", { type: "button", class: "reject", onclick: decide(false) }, "Reject")),
    );
  }

  function signalForm(target, event) {
    const key = el("input", { name: "key", placeholder: "event key", value: event });
    const payload = el("textarea", { name: "payload", rows: 2, placeholder: "payload (JSON, optional)" });
    const send = async () => {
      let body;
      try {
        body = { key: key.value, payload: payload.value.trim() ? JSON.parse(payload.value) : null };
      } catch (e) {
        notice("The payload is not JSON: " + e.message, "error");
        return;
      }
      await act(() => api("POST", "/executions/" + encodeURIComponent(target) + "/signal", body), "Signal sent.");
    };
    return el(
      "div",
      { class: "signal" },
      el("h3", {}, event ? "Waiting for event " + event : "Send a signal"),
      el("div", { class: "row" }, key, payload, el("button", { type: "button", class: "send", onclick: send }, "Signal")),
    );
  }

  function cancelForm() {
    const reason = el("input", { name: "reason", placeholder: "reason (optional)" });
    const go = async () => {
      if (!confirm("Cancel execution " + exec.id + "?")) return;
      const body = reason.value ? { reason: reason.value } : {};
      await act(() => api("POST", "/executions/" + encodeURIComponent(exec.id) + "/cancel", body), "Cancelled.");
    };
    return el("div", { class: "cancel row" }, reason, el("button", { type: "button", class: "danger", onclick: go }, "Cancel execution"));
  }

  async function act(call, done) {
    try {
      await call();
      notice(done, "ok");
      if (document.activeElement) document.activeElement.blur();
      load();
    } catch (err) {
      showError(err);
    }
  }

  // -- The chart: one row per node visit on a shared time axis --

  /** Where a visit's bar ends: its completion (at least its measured duration), its last failure, or now. */
  function visitEnd(v, now) {
    const start = v.started_ms || v.scheduled_ms;
    if (v.finished_ms) return Math.max(v.finished_ms, start + (v.duration_us || 0) / 1000);
    const lastFail = (v.failures || []).reduce((m, f) => Math.max(m, f.at_ms), 0);
    if (TERMINAL.has(v.status) || v.status === "stopped") return Math.max(start, lastFail);
    return now;
  }

  function bounds() {
    let lo = exec.created_ms;
    let hi = TERMINAL.has(exec.status) ? exec.updated_ms : Date.now();
    const see = (v) => {
      if (v.scheduled_ms) lo = Math.min(lo, v.scheduled_ms);
      hi = Math.max(hi, visitEnd(v, lo));
    };
    tl.nodes.forEach(see);
    for (const t of lanes.values()) if (t) t.nodes.forEach(see);
    return [lo, Math.max(hi, lo + 1)];
  }

  function drawChart() {
    const [lo, hi] = bounds();
    const now = TERMINAL.has(exec.status) ? hi : Date.now();
    const pct = (ms) => (((Math.min(Math.max(ms, lo), hi) - lo) / (hi - lo)) * 100).toFixed(3) + "%";
    const span = (node, from, to) => {
      node.style.left = pct(from);
      node.style.width = "max(2px, calc(" + pct(to) + " - " + pct(from) + "))";
      return node;
    };
    const axis = el("div", { class: "axis" });
    for (let i = 0; i <= 4; i++) {
      const tick = el("span", { class: "tick" }, "+" + fmtDuration(Math.round(((hi - lo) * i) / 4)));
      tick.style.left = i * 25 + "%";
      axis.append(tick);
    }
    const rows = [el("div", { class: "tl-row tl-axis" }, el("div", { class: "tl-label" }), axis)];
    const visitRow = (v, owner, lane) => {
      const key = (owner ? owner + "/" : "") + v.node + "#" + v.visit;
      const track = el("div", { class: "tl-track" });
      const start = v.started_ms || v.scheduled_ms;
      const end = visitEnd(v, now);
      track.append(span(el("div", { class: "bar s-" + v.status, title: v.node + " " + v.status }), start, end));
      for (const f of v.failures || []) {
        track.append(span(el("div", { class: "mark fail", title: f.class + ": " + f.message }), f.at_ms, f.at_ms));
        if (f.retry_at_ms) track.append(span(el("div", { class: "mark backoff", title: "retry backoff" }), f.at_ms, f.retry_at_ms));
      }
      for (const w of v.waits || []) {
        const to = w.ended ? w.ended.at_ms : TERMINAL.has(v.status) ? v.finished_ms || now : now;
        track.append(span(el("div", { class: "mark wait", title: "waiting: " + w.kind }), w.since_ms, to));
      }
      const label = el(
        "div",
        { class: "tl-label" },
        lane ? el("span", { class: "lane" }, lane + " · ") : "",
        v.node,
        v.visit > 1 ? el("span", { class: "muted" }, " #" + v.visit) : "",
        v.attempts > 1 ? el("span", { class: "retries", title: "attempts" }, " ×" + v.attempts) : "",
      );
      if (!owner && v.branches && v.branches.length) {
        const open = expanded.has(key);
        label.append(
          " ",
          el(
            "button",
            {
              type: "button",
              class: "expand",
              onclick: async (e) => {
                e.stopPropagation();
                if (open) expanded.delete(key);
                else {
                  expanded.add(key);
                  await loadLanes(tl, key);
                }
                drawChart();
              },
            },
            (open ? "▾ " : "▸ ") + v.branches.length + (v.branches.length > 1 ? " branches" : " branch"),
          ),
        );
      }
      const row = el(
        "div",
        {
          class: "tl-row" + (selected.key === key ? " selected" : "") + (lane ? " tl-lane" : ""),
          "data-node": v.node,
          "data-visit": v.visit,
          "data-status": v.status,
          tabindex: 0,
          onclick: () => {
            selected.key = key;
            selected.visit = v;
            selected.owner = owner;
            drawChart();
            drawDetails();
          },
        },
        label,
        track,
      );
      rows.push(row);
      if (!owner && expanded.has(key)) {
        for (const b of (v.branches || []).slice(0, MAX_LANES)) {
          const child = lanes.get(b.child);
          if (!child) {
            rows.push(el("div", { class: "tl-row tl-lane" }, el("div", { class: "tl-label muted" }, "branch " + b.branch + ": not readable")));
            continue;
          }
          for (const cv of child.nodes) visitRow(cv, b.child, "branch " + b.branch);
        }
      }
    };
    for (const v of tl.nodes) visitRow(v, null, null);
    if (!tl.nodes.length) rows.push(el("p", { class: "muted" }, "No node has been scheduled yet."));
    const legend = el(
      "div",
      { class: "legend" },
      ...["completed", "running", "waiting", "retrying", "failed", "cancelled"].map((s) =>
        el("span", {}, el("i", { class: "bar s-" + s }), s),
      ),
      el("span", {}, el("i", { class: "mark wait" }), "wait"),
      el("span", {}, el("i", { class: "mark backoff" }), "retry backoff"),
    );
    chart.replaceChildren(legend, ...rows);
    chart.dataset.rows = String(tl.nodes.length);
    // Keep the selection current across live updates.
    if (selected.key && !selected.owner) {
      const again = tl.nodes.find((v) => v.node + "#" + v.visit === selected.key);
      if (again) selected.visit = again;
    }
  }

  // -- The details of the selected visit --

  /** The state before and after visit `i`: the input with the completed patches folded in journal order. */
  function statesAround(t, i) {
    const seqs = t.seqs || [];
    const mine = seqs[i] || {};
    const order = t.nodes
      .map((v, j) => ({ patch: v.patch, seq: (seqs[j] || {}).completed }))
      .filter((x) => x.seq && x.patch)
      .sort((a, b) => a.seq - b.seq);
    const fold = (limit) => {
      const s = { ...(t.input || {}) };
      for (const x of order) if (x.seq < limit) Object.assign(s, x.patch);
      return s;
    };
    const startSeq = mine.started || mine.completed || t.last_seq + 1;
    const before = fold(startSeq);
    const after = mine.completed ? fold(mine.completed + 1) : null;
    return [before, after];
  }

  function diff(before, after) {
    const rows = [];
    const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
    for (const k of [...keys].sort()) {
      const a = JSON.stringify(before[k]);
      const b = JSON.stringify(after[k]);
      if (a === b) continue;
      const kind = !(k in before) ? "added" : !(k in after) ? "removed" : "changed";
      rows.push(
        el("tr", { class: "d-" + kind }, el("td", { class: "mono" }, k), el("td", {}, kind),
          el("td", {}, el("pre", { class: "json" }, a === undefined ? "" : JSON.stringify(before[k], null, 2))),
          el("td", {}, el("pre", { class: "json" }, b === undefined ? "" : JSON.stringify(after[k], null, 2)))),
      );
    }
    if (!rows.length) return el("p", { class: "muted" }, "The state did not change.");
    return el("table", { class: "diff" }, el("thead", {}, el("tr", {}, el("th", {}, "key"), el("th", {}, ""), el("th", {}, "before"), el("th", {}, "after"))), el("tbody", {}, rows));
  }

  function section(title, ...body) {
    return el("details", { open: true }, el("summary", {}, title), ...body);
  }

  function drawDetails() {
    const v = selected.visit;
    if (!v) {
      details.replaceChildren(el("p", { class: "muted" }, "Select a step in the timeline to see what it received and returned."));
      return;
    }
    const t = selected.owner ? lanes.get(selected.owner) : tl;
    const i = t ? t.nodes.indexOf(v) : -1;
    const parts = [
      el("h2", {}, "Step " + v.node, v.visit > 1 ? " #" + v.visit : "", " ", badge(v.status)),
      el(
        "dl",
        { class: "facts" },
        el("dt", {}, "Attempts"),
        el("dd", {}, String(v.attempts)),
        el("dt", {}, "Duration"),
        el("dd", {}, v.duration_us != null ? fmtDuration(Math.round(v.duration_us / 1000)) : ""),
        el("dt", {}, "Next"),
        el("dd", {}, v.next || ""),
        el("dt", {}, "Usage"),
        el("dd", {}, fmtCost(v.usage)),
      ),
    ];
    if (selected.owner) parts.push(el("p", {}, "In branch execution ", el("a", { href: "#/executions/" + encodeURIComponent(selected.owner), class: "mono" }, selected.owner)));
    const errs = v.failures && v.failures.length
      ? v.failures.map((f) =>
          el("li", {}, el("span", { class: "err-class" }, f.class), " attempt " + f.attempt + ": " + f.message +
            (f.retry_at_ms ? " — retried at " + fmtTime(f.retry_at_ms) : " — gave up")))
      : (v.errors || []).map((e) => el("li", {}, e));
    if (errs.length) parts.push(section("Errors", el("ul", { class: "errors" }, errs)));
    if (t && i >= 0) {
      const [before, after] = statesAround(t, i);
      parts.push(section("Received (state before)", pre(before)));
      parts.push(section("Returned", v.patch ? pre(v.patch) : el("p", { class: "muted" }, "Nothing yet.")));
      if (after) parts.push(section("State before → after", diff(before, after)));
    }
    const calls = [];
    for (const x of v.exchanges || []) calls.push(exchange("exchange", "attempt " + x.attempt, x));
    for (const c of v.calls || []) calls.push(exchange(c.kind, c.name + " · attempt " + c.attempt, c));
    if (calls.length) parts.push(section("Model and tool exchanges", ...calls));
    for (const w of v.waits || []) {
      parts.push(section("Wait (" + w.kind + ")",
        el("p", {}, w.event ? "event " + w.event + " · " : "", "since " + fmtTime(w.since_ms),
          w.deadline_ms ? " · deadline " + fmtTime(w.deadline_ms) : ""),
        w.prompt ? el("p", { class: "prompt" }, w.prompt) : "",
        w.ended ? pre(w.ended) : el("p", { class: "muted" }, "Still waiting.")));
    }
    for (const a of v.tool_approvals || []) {
      parts.push(section("Tool call " + a.call + " (" + a.tool + ")", el("p", { class: "prompt" }, a.prompt), pre(a.arguments),
        a.decision ? pre(a.decision) : el("p", { class: "muted" }, "Waiting for a decision.")));
    }
    if (v.branches && v.branches.length) {
      parts.push(section("Branches", el("ul", {}, v.branches.map((b) => el("li", {}, "branch " + b.branch + " ",
        el("a", { href: "#/executions/" + encodeURIComponent(b.child), class: "mono" }, b.child), " ", badge(b.outcome || "running"),
        b.error ? " " + b.error : "")))));
    }
    parts.push(forkForm(v, selected.owner));
    details.replaceChildren(...parts);
  }

  function exchange(kind, title, x) {
    const u = x.usage || {};
    return el(
      "div",
      { class: "exchange" },
      el("h4", {}, kind + " · " + title + " · " + (u.input_tokens || 0) + " in / " + (u.output_tokens || 0) + " out tokens · $" + (u.cost_usd || 0).toFixed(4)),
      el("details", {}, el("summary", {}, "request"), pre(x.request)),
      el("details", { open: true }, el("summary", {}, "response"), pre(x.response)),
    );
  }

  // `branch`: the branch execution the step ran in (the fork is of this
  // execution, going on inside that branch), or none.
  function forkForm(v, branch) {
    const patch = el("textarea", { name: "set", rows: 3, placeholder: '{"key": "a corrected value"} (optional)' });
    const latest = el("input", { type: "checkbox", name: "latest" });
    const go = async () => {
      let set = {};
      if (patch.value.trim()) {
        try {
          set = JSON.parse(patch.value);
        } catch (e) {
          notice("The patch is not JSON: " + e.message, "error");
          return;
        }
        if (typeof set !== "object" || Array.isArray(set) || set === null) {
          notice("The patch must be a JSON object of state keys.", "error");
          return;
        }
      }
      try {
        const made = await api("POST", "/executions/" + encodeURIComponent(branch || exec.id) + "/fork", {
          from: v.node, visit: v.visit, set, latest: latest.checked,
        });
        location.hash = "#/executions/" + encodeURIComponent(made.id);
      } catch (err) {
        showError(err);
      }
    };
    return section(
      "Fork from this step",
      el("p", { class: "muted" }, branch
        ? "Start a new execution whose history up to this fan-out is this one's; in it this branch goes on from " + v.node + " #" + v.visit + " with the state it had there, patched with these keys, and the branches that completed keep their results."
        : "Start a new execution whose history up to " + v.node + " #" + v.visit + " is this one's, with the state it had there, patched with these keys."),
      patch,
      el("div", { class: "row" }, el("label", {}, latest, " on the latest version"),
        el("button", { type: "button", class: "fork", onclick: go }, "Fork")),
    );
  }

  drawDetails();
  load();
}

// ---- Start -------------------------------------------------------------

function start() {
  const form = document.getElementById("keyform");
  const input = document.getElementById("apikey");
  input.value = apiKey();
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (input.value) sessionStorage.setItem(KEY_STORE, input.value);
    else sessionStorage.removeItem(KEY_STORE);
    route();
  });
  document.getElementById("forgetkey").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORE);
    input.value = "";
    route();
  });
  window.addEventListener("hashchange", route);
  route();
}

document.addEventListener("DOMContentLoaded", start);

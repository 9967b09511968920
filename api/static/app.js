// braid search page: plain JS, no build step.
//
// A search is its URL: ?q=&mode=&top_k=&filter=&facets=&rerank=&min_score= (what the form
// holds), so it can be linked and screenshotted. Facet values, filter chips and "count by"
// fields are plain links to such a URL (the filter or facets changed), so following one
// starts again at page 1. Pages are not in the URL: next/previous keep the cursors of the
// pages seen so far (page 1 has none) and always resend the search that made them, as the
// API requires of a cursor. Only a passage's `snippet` is set as HTML: the server escapes
// it and adds nothing but <mark> tags (and it is checked again here); the rest is text.
"use strict";

const $ = (id) => document.getElementById(id);
const form = $("search-form");
const STAGES = ["bm25", "dense", "rerank"];
// Request fields whose errors point at a form control (error.path is a JSON path).
const CONTROLS = {
  query: "query", mode: "mode", top_k: "top-k", filter: "filter", facets: "facets",
  rerank: "rerank", min_score: "min-score",
};

// The search shown: the state it was made from and the cursors of its pages seen so far.
let active = null;
let cursors = [null];
let nextCursor = null;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function markInvalid(path) {
  for (const id of Object.values(CONTROLS)) $(id).removeAttribute("aria-invalid");
  const field = (path || "").match(/^\$\.([a-z_]+)/);
  if (field && CONTROLS[field[1]]) $(CONTROLS[field[1]]).setAttribute("aria-invalid", "true");
}

// -- state <-> form <-> URL --------------------------------------------------------------

function parseFacets(text) {
  return text.split(",").map((f) => f.trim()).filter(Boolean);
}

function readForm() {
  return {
    q: $("query").value,
    mode: $("mode").value,
    top_k: $("top-k").value.trim() || "10",
    filter: $("filter").value.trim(),
    facets: parseFacets($("facets").value),
    rerank: $("rerank").checked,
    min_score: $("min-score").value.trim(),
  };
}

function writeForm(state) {
  $("query").value = state.q;
  $("mode").value = state.mode;
  $("top-k").value = state.top_k;
  $("filter").value = state.filter;
  $("facets").value = state.facets.join(", ");
  $("rerank").checked = state.rerank;
  $("min-score").value = state.min_score;
}

function stateFromUrl(search) {
  const p = new URLSearchParams(search);
  return {
    q: p.get("q") || "",
    mode: p.get("mode") || "hybrid",
    top_k: p.get("top_k") || "10",
    filter: p.get("filter") || "",
    facets: parseFacets(p.get("facets") || ""),
    rerank: Boolean(p.get("rerank")),
    min_score: p.get("min_score") || "",
  };
}

// The one place a search's URL is built: the address bar, facet links and chips use it.
function urlFor(state) {
  const p = new URLSearchParams({ q: state.q, mode: state.mode, top_k: state.top_k });
  if (state.filter) p.set("filter", state.filter);
  if (state.facets.length) p.set("facets", state.facets.join(","));
  if (state.rerank) p.set("rerank", "1");
  if (state.min_score) p.set("min_score", state.min_score);
  return `?${p}`;
}

// The filter as an object, or null when it is empty or not a plain JSON object.
function filterObject(state) {
  if (!state.filter) return {};
  try {
    const value = JSON.parse(state.filter);
    return value && typeof value === "object" && !Array.isArray(value) ? value : null;
  } catch (e) {
    return null;
  }
}

function withFilter(state, filter) {
  const text = Object.keys(filter).length ? JSON.stringify(filter) : "";
  return { ...state, filter: text };
}

function requestBody(state, cursor) {
  const top = Number(state.top_k);
  const body = {
    query: state.q,
    mode: state.mode,
    // A non-integer is sent as it is, for the API to name it (422 at $.top_k).
    top_k: Number.isFinite(top) && state.top_k !== "" ? top : state.top_k,
    rerank: state.rerank,
    explain: true,
  };
  if (state.filter) {
    try {
      body.filter = JSON.parse(state.filter);
    } catch (e) {
      throw { message: `filter is not valid JSON: ${e.message}`, path: "$.filter" };
    }
  }
  if (state.facets.length) body.facets = state.facets;
  if (state.min_score) {
    const min = Number(state.min_score);
    if (!Number.isFinite(min)) throw { message: "min score must be a number", path: "$.min_score" };
    body.min_score = min;
  }
  if (cursor) body.cursor = cursor;
  return body;
}

// -- rendering ---------------------------------------------------------------------------

function formatValue(v) {
  return Array.isArray(v) ? v.join(", ") : String(v);
}

// The server's snippet as nodes, if it holds only text and bare <mark> elements. A
// <template>'s content is inert: nothing in it loads or runs while it is checked.
function snippetNodes(html) {
  const template = document.createElement("template");
  template.innerHTML = html;
  const elements = template.content.querySelectorAll("*");
  for (const node of elements) {
    if (node.tagName !== "MARK" || node.attributes.length) return null;
  }
  return template.content;
}

function stagesLine(stages) {
  const line = el("div", "stages");
  const names = [...STAGES.slice(0, 2), ...Object.keys(stages || {}).filter((s) => !STAGES.includes(s)), "rerank"];
  for (const stage of names) {
    const s = stages && stages[stage];
    const item = el("span", s ? "stage" : "stage none", `${stage} ${s ? `#${s.rank}` : "–"}`);
    item.dataset.stage = stage;
    item.title = s ? `${stage}: rank ${s.rank}, score ${s.score.toFixed(4)}` : `${stage}: not found by this stage`;
    line.appendChild(item);
  }
  return line;
}

function passageItem(passage) {
  const li = el("li", "passage");
  li.dataset.chunkId = passage.chunk_id;
  const text = el("p", "snippet");
  const nodes = passage.snippet != null ? snippetNodes(passage.snippet) : null;
  if (nodes) {
    text.appendChild(nodes);
  } else {
    const plain = passage.text || "";
    text.textContent = plain.length > 280 ? plain.slice(0, 280) + "…" : plain;
  }
  li.append(text, stagesLine(passage.stages));
  return li;
}

function documentCard(doc) {
  const card = el("article", "doc");
  card.dataset.docId = doc.doc_id;
  const head = el("div", "doc-head");
  head.append(
    el("span", "rank", String(doc.rank)),
    el("h2", "title", doc.title || doc.doc_id),
    el("span", "score", doc.score.toFixed(4)),
  );
  head.lastChild.title = "score (of its best passage)";
  const meta = Object.entries(doc.metadata || {})
    .map(([k, v]) => `${k}: ${formatValue(v)}`).join(" · ");
  const passages = el("ol", "passages");
  for (const passage of doc.passages) passages.appendChild(passageItem(passage));
  card.append(head, el("div", "doc-id", doc.doc_id), el("div", "meta", meta), passages);
  return card;
}

function link(text, state, className) {
  const a = el("a", className, text);
  a.href = urlFor(state);
  return a;
}

function renderChips(state) {
  const box = $("chips");
  box.replaceChildren();
  const filter = filterObject(state);
  for (const [field, value] of Object.entries(filter || {})) {
    const rest = { ...filter };
    delete rest[field];
    const shown = typeof value === "object" ? JSON.stringify(value) : String(value);
    const chip = link(`${field}: ${shown} ×`, withFilter(state, rest), "chip");
    chip.setAttribute("aria-label", `remove filter ${field}: ${shown}`);
    chip.dataset.field = field;
    box.appendChild(chip);
  }
  box.hidden = !box.children.length;
}

function renderFacets(state, facets, documents) {
  const panel = $("facet-panel");
  panel.replaceChildren();
  // A filter that is not a plain object cannot take a value merged in: counts only.
  const filter = filterObject(state);
  for (const [field, values] of Object.entries(facets || {})) {
    const group = el("section", "facet");
    group.dataset.field = field;
    group.appendChild(el("h3", null, field));
    const list = el("ul");
    for (const { value, count } of values) {
      // Clicking a value filters on it (replacing another value of the field); clicking
      // the selected one removes it again.
      const selected = filter !== null && filter[field] === value;
      const next = { ...filter };
      if (selected) delete next[field]; else next[field] = value;
      const a = filter !== null
        ? link(formatValue(value), withFilter(state, next), selected ? "facet-value selected" : "facet-value")
        : el("span", "facet-value", formatValue(value));
      a.dataset.field = field;
      a.dataset.value = JSON.stringify(value);
      if (selected) a.setAttribute("aria-current", "true");
      a.append(" ", el("span", "count", String(count)));
      const li = el("li");
      li.appendChild(a);
      list.appendChild(li);
    }
    if (!values.length) list.appendChild(el("li", "empty", "no values"));
    group.appendChild(list);
    panel.appendChild(group);
  }
  // Fields this page's documents have and the search does not count yet: each a link that
  // adds it to the facets. Every one exists in the index, so none can answer 422.
  const fields = new Set();
  for (const doc of documents) for (const k of Object.keys(doc.metadata || {})) fields.add(k);
  const more = [...fields].filter((f) => !state.facets.includes(f)).sort();
  if (more.length) {
    const by = el("p", "count-by", "count by: ");
    more.forEach((f, i) => {
      if (i) by.append(" · ");
      const a = link(f, { ...state, facets: [...state.facets, f] }, "add-facet");
      a.dataset.field = f;
      by.appendChild(a);
    });
    panel.appendChild(by);
  }
  panel.hidden = !panel.children.length;
}

function render(state, data) {
  // An older server (or group_by chunk) has no documents: show each hit as one.
  const documents = data.documents || data.hits.map((h) => ({ ...h, passages: [h] }));
  $("results").replaceChildren(...documents.map(documentCard));
  $("empty").hidden = documents.length !== 0;
  const first = data.offset + 1;
  $("summary").textContent = documents.length
    ? `results ${first}–${data.offset + documents.length}` : "";
  nextCursor = data.next_cursor;
  $("prev").disabled = cursors.length <= 1;
  $("next").disabled = !nextCursor;
  $("range").textContent = `page ${cursors.length}`;
  $("pager").hidden = cursors.length <= 1 && !nextCursor;
  renderFacets(state, data.facets, documents);
  $("timings").textContent = Object.entries(data.timings_ms)
    .map(([k, v]) => `${k} ${v.toFixed(1)} ms`).join(" · ") +
    (data.embedding_model ? ` · ${data.embedding_model.id}` : "") +
    (data.reranker_model ? ` · reranked by ${data.reranker_model}` : "");
}

function clearResults() {
  $("results").replaceChildren();
  $("summary").textContent = "";
  $("empty").hidden = true;
  $("pager").hidden = true;
  $("facet-panel").hidden = true;
  $("timings").textContent = "";
}

// -- searching ---------------------------------------------------------------------------

async function run(state, cursor) {
  showError("");
  markInvalid(null);
  renderChips(state);
  let body;
  try {
    body = requestBody(state, cursor);
  } catch (problem) {
    showError(problem.message);
    markInvalid(problem.path);
    clearResults();
    document.body.dataset.searched = "1";
    return;
  }
  const headers = { "Content-Type": "application/json" };
  const key = $("api-key").value;
  if (key) headers["X-API-Key"] = key;
  $("status").textContent = "searching…";
  $("next").disabled = $("prev").disabled = true;  // one page request at a time
  $("results-area").setAttribute("aria-busy", "true");
  try {
    const response = await fetch("/v1/search", { method: "POST", headers, body: JSON.stringify(body) });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const err = data.error || {};
      showError(`${err.code || response.status}: ${err.message || "error"}${err.path ? ` (at ${err.path})` : ""}`);
      markInvalid(err.path);
      clearResults();
      return;
    }
    render(state, data);
  } catch (e) {
    showError(`request failed: ${e.message}`);
    clearResults();
  } finally {
    $("status").textContent = "";
    $("results-area").removeAttribute("aria-busy");
    document.body.dataset.searched = "1";
  }
}

// A new search (the form, or a URL): page 1.
function newSearch(state) {
  active = state;
  cursors = [null];
  nextCursor = null;
  history.replaceState(null, "", urlFor(state));
  return run(state, null);
}

function nextPage() {
  if (!active || !nextCursor) return;
  cursors.push(nextCursor);
  run(active, nextCursor);
}

function previousPage() {
  if (!active || cursors.length <= 1) return;
  cursors.pop();
  run(active, cursors[cursors.length - 1]);
}

async function checkReady() {
  try {
    const r = await fetch("/readyz");
    $("status").textContent = r.ok ? "ready" : "loading models…";
  } catch (e) {
    $("status").textContent = "offline";
  }
}

form.addEventListener("submit", (event) => { event.preventDefault(); newSearch(readForm()); });
$("next").addEventListener("click", nextPage);
$("prev").addEventListener("click", previousPage);
$("api-key").value = localStorage.getItem("braid-api-key") || "";
$("api-key").addEventListener("change", () => localStorage.setItem("braid-api-key", $("api-key").value));

const initial = stateFromUrl(location.search);
writeForm(initial);
if (initial.q) newSearch(initial); else checkReady();

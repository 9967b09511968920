// braid search page: plain JS, no build step. Reads ?q=&mode=&filter=&top_k=&rerank= so a
// search can be linked (and screenshotted) directly.
"use strict";

const $ = (id) => document.getElementById(id);
const form = $("search-form");
const STAGES = ["bm25", "dense", "rerank"];

function cell(text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.textContent = text;
  return td;
}

function showError(message) {
  const el = $("error");
  el.textContent = message;
  el.hidden = !message;
}

function render(data) {
  const body = $("results").querySelector("tbody");
  body.replaceChildren();
  for (const hit of data.hits) {
    const tr = document.createElement("tr");
    tr.dataset.docId = hit.doc_id;
    tr.appendChild(cell(String(hit.rank), "num"));
    const doc = document.createElement("td");
    const title = document.createElement("div");
    title.className = "title";
    title.textContent = hit.title || hit.doc_id;
    const id = document.createElement("div");
    id.className = "doc-id";
    id.textContent = hit.chunk_id;
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = Object.entries(hit.metadata || {})
      .map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(", ") : v}`).join(" · ");
    doc.append(title, id, meta);
    tr.appendChild(doc);
    tr.appendChild(cell(hit.score.toFixed(4), "num"));
    for (const stage of STAGES) {
      const s = hit.stages && hit.stages[stage];
      const td = cell(s ? String(s.rank) : "–", s ? "rank" : "rank none");
      td.dataset.stage = stage;
      if (s) td.title = `${stage} score ${s.score.toFixed(4)}`;
      tr.appendChild(td);
    }
    const text = hit.text || "";
    tr.appendChild(cell(text.length > 280 ? text.slice(0, 280) + "…" : text));
    body.appendChild(tr);
  }
  $("results").hidden = data.hits.length === 0;
  $("empty").hidden = data.hits.length !== 0;
  $("timings").textContent = Object.entries(data.timings_ms)
    .map(([k, v]) => `${k} ${v.toFixed(1)} ms`).join(" · ") +
    (data.embedding_model ? ` · ${data.embedding_model.id}` : "") +
    (data.reranker_model ? ` · reranked by ${data.reranker_model}` : "");
}

async function search() {
  showError("");
  const request = {
    query: $("query").value,
    mode: $("mode").value,
    top_k: Number($("top-k").value) || 10,
    explain: true,
  };
  request.rerank = $("rerank").checked;
  const filterText = $("filter").value.trim();
  if (filterText) {
    try {
      request.filter = JSON.parse(filterText);
    } catch (e) {
      showError(`filter is not valid JSON: ${e.message}`);
      return;
    }
  }
  const headers = { "Content-Type": "application/json" };
  const key = $("api-key").value;
  if (key) headers["X-API-Key"] = key;
  $("status").textContent = "searching…";
  try {
    const response = await fetch("/v1/search", { method: "POST", headers, body: JSON.stringify(request) });
    const data = await response.json();
    if (!response.ok) {
      const err = data.error || {};
      showError(`${err.code || response.status}: ${err.message || "error"}${err.path ? ` (at ${err.path})` : ""}`);
      $("results").hidden = true;
      return;
    }
    render(data);
    const params = new URLSearchParams({ q: request.query, mode: request.mode, top_k: String(request.top_k) });
    if (filterText) params.set("filter", filterText);
    if ($("rerank").checked) params.set("rerank", "1");
    history.replaceState(null, "", `?${params}`);
  } catch (e) {
    showError(`request failed: ${e.message}`);
  } finally {
    $("status").textContent = "";
    document.body.dataset.searched = "1";
  }
}

async function checkReady() {
  try {
    const r = await fetch("/readyz");
    $("status").textContent = r.ok ? "ready" : "loading models…";
  } catch (e) {
    $("status").textContent = "offline";
  }
}

form.addEventListener("submit", (event) => { event.preventDefault(); search(); });
$("api-key").value = localStorage.getItem("braid-api-key") || "";
$("api-key").addEventListener("change", () => localStorage.setItem("braid-api-key", $("api-key").value));

const params = new URLSearchParams(location.search);
if (params.get("mode")) $("mode").value = params.get("mode");
if (params.get("top_k")) $("top-k").value = params.get("top_k");
if (params.get("filter")) $("filter").value = params.get("filter");
if (params.get("rerank")) $("rerank").checked = true;
if (params.get("q")) { $("query").value = params.get("q"); search(); } else { checkReady(); }

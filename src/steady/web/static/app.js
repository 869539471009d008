// Steady Diffusion studio page. Plain JS, no build step.
// The gallery is a virtual grid: only the rows in view (plus a small margin) exist in the DOM,
// page data is kept for a bounded number of windows, and an image leaving the view drops its src,
// so browsing tens of thousands of images keeps the page's memory flat.
"use strict";

const $ = (id) => document.getElementById(id);
const WINDOW = 120;        // images per fetched page
const MAX_WINDOWS = 8;     // pages kept in memory (about 1000 items of a few hundred bytes)
const MARGIN_ROWS = 4;     // rows rendered above and below the view (a screen's step finds most thumbnails loaded)

const state = {
  view: "generate",
  models: [],
  job: null,            // the job this page started and is watching
  gallery: { total: 0, cols: 1, cell: 168, windows: new Map(), epoch: 0, stale: true, restorePos: null, restoring: false,
             current: -1, applied: "" },
  detail: { open: false, index: -1, id: null, record: null, standalone: false },
};

// ---- helpers -------------------------------------------------------------------------------
async function api(path, options = {}) {
  const init = { headers: {}, ...options };
  if (init.body && typeof init.body !== "string") {
    init.body = JSON.stringify(init.body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, init);
  const data = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) throw new Error((data && data.error) || `${response.status} ${response.statusText}`);
  return data;
}
const mib = (bytes) => (bytes ? `${Math.round(bytes / 2 ** 20).toLocaleString()} MiB` : "–");
const gib = (bytes) => (bytes ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : "–");
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value; else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}
const thumbUrl = (id, size = 256) => `/api/images/${id}/thumb?size=${size}`;

// ---- views -----------------------------------------------------------------------------------
function show(view) {
  state.view = view;
  for (const name of ["generate", "gallery"]) {
    $(`view-${name}`).hidden = name !== view;
    $(`tab-${name}`).setAttribute("aria-selected", String(name === view));
  }
  if (view === "gallery") {
    if (state.gallery.stale) reloadGallery(); else renderGrid();
    $("grid-scroll").focus();
  }
  rememberPlace(false);
}

// ---- generate --------------------------------------------------------------------------------
function formRequest() {
  // An empty steps field and the "Automatic" sampler leave them to the model (its defaults file,
  // a few-step LoRA's recommendation, or 20 steps of Euler a), as the CLI does when they are not given.
  const body = { prompt: $("prompt").value, negative_prompt: $("negative_prompt").value, model: $("model").value };
  if ($("sampler").value) body.sampler = $("sampler").value;
  for (const name of ["n_images", "seed", "steps", "width", "height"]) {
    const value = $(name).value.trim();
    if (value !== "") body[name] = Number.parseInt(value, 10);
  }
  body.until_saturated = $("until_saturated").checked;
  for (const name of ["x_axis", "y_axis"]) {
    const value = $(name).value.trim();
    if (value !== "") body[name] = value;
  }
  const cfg = $("cfg_scale").value.trim();
  if (cfg !== "") body.cfg_scale = Number.parseFloat(cfg);
  if ($("vae")) body.vae = $("vae").value;
  if ($("style")?.value) body.styles = $("style").value;
  return body;
}

async function submitGenerate(event) {
  event.preventDefault();
  $("gen-error").textContent = "";
  try {
    const job = await api("/api/generate", { method: "POST", body: await withSource(formRequest()) });
    state.job = { ...job, done: 0 };
    $("run-strip").replaceChildren();
    $("best-strip").replaceChildren();
    $("best").hidden = true;
    $("xy-result").hidden = true;
    $("notice").textContent = "";
    $("progress").hidden = false;
    $("cancel").disabled = false;
    $("progress-text").textContent = `queued: run #${job.run_id}, ${job.n_images} image(s)`;
    $("bar-fill").style.width = "0";
  } catch (error) {
    $("gen-error").textContent = error.message;
  }
}

async function cancelJob() {
  if (!state.job) return;
  await api(`/api/jobs/${state.job.job_id}/cancel`, { method: "POST" });
}

function onProgress(event) {
  if (!state.job || event.job_id !== state.job.job_id) return;
  $("progress").hidden = false;
  $("bar-fill").style.width = `${(event.fraction * 100).toFixed(1)}%`;
  $("progress-text").textContent =
    `image ${event.index + 1}/${event.n_images} · step ${event.step}/${event.steps} · ` +
    (event.eta_s === null ? "estimating the time left" : `${event.eta_s.toFixed(1)} s left`);
  if (event.preview) { $("preview").src = event.preview; $("preview").hidden = false; }
}

function onImage(event) {
  state.gallery.stale = true;
  if (!state.job || event.job_id !== state.job.job_id) return;
  const scores = event.adherence === null ? "" : ` · adherence ${event.adherence.toFixed(4)}`;
  const img = el("img", { src: thumbUrl(event.image_id, 128), alt: `image ${event.index + 1}`, "data-id": event.image_id,
                           title: `seed ${event.seed} · ${event.seconds} s${scores}` });
  img.addEventListener("click", () => openStandalone(event.image_id));
  $("run-strip").append(img);
}

function onJob(event) {
  if (["done", "failed", "cancelled"].includes(event.state)) {
    state.gallery.stale = true;
    loadHistory();
    if (state.job && event.job_id === state.job.job_id) {
      $("cancel").disabled = true;
      $("preview").hidden = true;
      $("bar-fill").style.width = event.state === "done" ? "100%" : $("bar-fill").style.width;
      $("progress-text").textContent = event.state === "done" ? `done: run #${event.run_id}` : `${event.state}: ${event.error || ""}`;
      if (event.state === "failed") $("gen-error").textContent = event.error;
      if (event.stop_reason && event.saturated) {
        $("notice").textContent = `This prompt has stopped producing new patterns (${event.stop_reason}): change the prompt.`;
        $("notice").classList.add("saturated");
      } else if (event.stop_reason) {
        $("notice").textContent = `This run ${event.stop_reason}.`;
        $("notice").classList.remove("saturated");
      }
      if (event.state === "done" || event.state === "cancelled") showBest(event.run_id);
      if (event.grid_url) {
        $("xy-image").src = event.grid_url;
        $("xy-link").href = event.grid_url;
        $("xy-result").hidden = false;
      }
    }
  }
}

function onMemory(sample) {
  $("m-rss").textContent = mib(sample.rss_bytes);
  $("m-vram").textContent = sample.vram_bytes ? mib(sample.vram_bytes) : "–";
  $("m-avail").textContent = gib(sample.available_bytes);
  $("m-swap").textContent = mib(sample.swap_used_bytes);
}

function connectEvents() {
  const source = new EventSource("/api/events");
  source.addEventListener("progress", (e) => onProgress(JSON.parse(e.data)));
  source.addEventListener("image", (e) => onImage(JSON.parse(e.data)));
  source.addEventListener("job", (e) => onJob(JSON.parse(e.data)));
  source.addEventListener("job", (e) => onUpscaleJob(JSON.parse(e.data)));
  source.addEventListener("progress", (e) => onUpscaleProgress(JSON.parse(e.data)));
  source.addEventListener("memory", (e) => onMemory(JSON.parse(e.data)));
  source.addEventListener("recycle", (e) => {
    const r = JSON.parse(e.data);
    $("notice").textContent = `worker recycled after ${r.images} image(s): ${r.reason}`;
  });
  source.addEventListener("import", (e) => {
    const r = JSON.parse(e.data);
    $("import-status").textContent = r.error ? r.error : r.finished
      ? `imported ${r.added} of ${r.files_seen} (${r.already_known + r.duplicates} known, ${r.skipped} skipped)`
      : `importing ${r.done}/${r.total}…`;
    if (r.finished) { state.gallery.stale = true; loadGroups().catch(() => {}); if (state.view === "gallery") reloadGallery(); }
  });
  source.addEventListener("thumbs", (e) => {
    const r = JSON.parse(e.data);
    $("import-status").textContent = r.done >= r.total ? "" : `thumbnails ${r.done.toLocaleString()}/${r.total.toLocaleString()}…`;
  });
  source.addEventListener("notice", (e) => { $("notice").textContent = JSON.parse(e.data).text; });
}

async function showBest(runId) {
  const run = await api(`/api/runs/${runId}?limit=1`);  // the best three come whatever the page
  if (run.n_done < 2 || !run.best.length) return;
  const byId = new Map(run.best_images.map((im) => [im.id, im]));
  $("best-strip").replaceChildren(...run.best.map((id, rank) => {
    const im = byId.get(id);
    const score = im && im.adherence !== null ? ` · adherence ${im.adherence.toPrecision(3)}` : "";
    const img = el("img", { src: thumbUrl(id, 128), alt: `best ${rank + 1} of run #${runId}`, "data-id": id,
                            title: `#${rank + 1} of ${run.n_done}${im ? ` · seed ${im.seed}` : ""}${score}` });
    img.addEventListener("click", () => openStandalone(id));
    return img;
  }));
  decorateBest();  // send to img2img / inpaint (img2img section)
  $("best").hidden = false;
}

// ---- iterate: the prompt's history -----------------------------------------------------------
function words(ops, plain) {
  const box = el("div", { class: "words" });
  if (!ops) { box.textContent = plain; return box; }
  for (const op of ops) box.append(el("span", { class: op.op }, op.text), " ");
  return box;
}

async function loadHistory() {
  const runs = await api("/api/history?limit=15");
  const list = $("history");
  for (const img of list.querySelectorAll("img")) img.removeAttribute("src");
  list.replaceChildren(...runs.map((run) => {
    const thumbs = el("div", { class: "strip" }, ...run.image_ids.map((id) => {
      const img = el("img", { src: thumbUrl(id, 128), alt: "", loading: "lazy", "data-id": id });
      img.addEventListener("click", () => openStandalone(id));
      return img;
    }));
    const reuse = el("button", { type: "button", title: "put this run's settings in the form (those of its best image)" },
      "reuse these settings");
    reuse.addEventListener("click", () => reuseRunSettings(run));
    return el("li", { "data-run": run.id },
      el("div", { class: "meta" }, `#${run.id} · ${new Date(run.created_at).toLocaleString()} · ${run.n_done}/${run.n_requested} · ${run.status} · ${run.model_name}`
        + (run.variety === null ? "" : ` · variety ${Math.round(run.variety * 100)}%`)),
      run.stop_reason ? el("div", { class: "meta saturated" }, run.stop_reason) : "",
      lineage(run.from_image_id, run.from_hash),
      words(run.diff, run.prompt), run.negative_prompt ? words(run.negative_diff, run.negative_prompt) : "", thumbs, reuse);
  }));
}

// "from image #123" (img2img, inpainting, upscale): opens that image; its hash when the catalog lacks it.
function lineage(imageId, hash) {
  if (imageId !== null && imageId !== undefined) {
    const link = el("a", { href: "#", class: "lineage" }, `from image #${imageId}`);
    link.addEventListener("click", (event) => { event.preventDefault(); openStandalone(imageId); });
    return el("div", { class: "meta" }, link);
  }
  return hash ? el("div", { class: "meta" }, `from an image not in the catalog (${hash.slice(0, 12)})`) : "";
}

// ---- gallery: a virtual grid -------------------------------------------------------------------
function filterParams() {
  const p = new URLSearchParams();
  if ($("f-text").value) p.set("q", $("f-text").value);
  if ($("f-model").value) p.set("model", $("f-model").value);
  if ($("f-since").value) p.set("since", $("f-since").value);
  if ($("f-until").value) p.set("until", $("f-until").value);
  if ($("f-fav").checked) p.set("favourite", "true");
  if ($("f-hide-rej").checked) p.set("hide_rejected", "true");
  if ($("f-trash").checked) p.set("trash", "true");
  if ($("f-sort").value !== "newest") p.set("sort", $("f-sort").value);
  const group = $("f-group").value;
  if (group === "here") p.set("here", "true"); else if (group) p.set("group", group);
  return p;
}

// The gallery's groups: everything, what was generated here, and each import (folder, date, count).
async function loadGroups() {
  const groups = await api("/api/imports");
  const select = $("f-group");
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "" }, "everything"), el("option", { value: "here" }, "generated here"),
    ...groups.map((g) => el("option", { value: String(g.id), title: g.folder },
      `import: ${g.folder.split("/").filter(Boolean).pop() || g.folder} (${new Date(g.created_at).toLocaleDateString()}, ${g.count.toLocaleString()})`)));
  if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
}

function reloadGallery() {
  const g = state.gallery;
  g.windows.clear();
  g.epoch += 1;
  g.stale = false;
  g.applied = filterParams().toString();   // what the grid shows (the inputs may be ahead of it)
  $("empty-trash").hidden = !$("f-trash").checked;
  return loadWindow(0).then(() => {
    if (g.restorePos !== null) {   // a reload or back: to the row it was at
      const scroll = $("grid-scroll");
      g.cols = Math.max(1, Math.floor((scroll.clientWidth - 16) / g.cell));
      $("grid-space").style.height = `${Math.ceil(g.total / g.cols) * g.cell}px`;
      scroll.scrollTop = Math.floor(g.restorePos / g.cols) * g.cell;
      g.restorePos = null;
    }
    renderGrid();
  });
}

// ---- gallery: its place in the URL -------------------------------------------------------------
// The hash carries the view, the gallery's filter and the position of its first row in view
// (#gallery?q=red&favourite=true&pos=1200), so a reload or the back button returns there. A new
// filter is a new history entry; scrolling replaces the current one.
const URL_CONTROLS = { q: "f-text", model: "f-model", since: "f-since", until: "f-until", sort: "f-sort" };
const URL_CHECKS = { favourite: "f-fav", hide_rejected: "f-hide-rej", trash: "f-trash" };

function galleryHash() {
  const g = state.gallery;
  const p = new URLSearchParams(g.applied);
  const pos = Math.floor($("grid-scroll").scrollTop / g.cell) * g.cols;
  if (pos > 0) p.set("pos", String(pos));
  const query = p.toString();
  return `#gallery${query ? `?${query}` : ""}`;
}

function rememberPlace(newEntry) {
  if (state.gallery.restoring) return;
  const hash = state.view === "gallery" ? galleryHash() : "#generate";
  if (hash === location.hash) return;
  if (newEntry) history.pushState(null, "", hash); else history.replaceState(null, "", hash);
}

function ensureOption(select, value) {
  if (value && ![...select.options].some((o) => o.value === value)) select.append(el("option", { value }, value));
  select.value = value;
}

function restorePlace() {
  const hash = location.hash;
  if (!hash.startsWith("#gallery")) { if (hash === "#generate") show("generate"); return; }
  const p = new URLSearchParams(hash.includes("?") ? hash.slice(hash.indexOf("?") + 1) : "");
  const g = state.gallery;
  g.restoring = true;
  for (const [name, id] of Object.entries(URL_CONTROLS)) {
    if ($(id).tagName === "SELECT") ensureOption($(id), p.get(name) || (name === "sort" ? "newest" : ""));
    else $(id).value = p.get(name) || "";
  }
  for (const [name, id] of Object.entries(URL_CHECKS)) $(id).checked = p.get(name) === "true";
  ensureOption($("f-group"), p.get("here") === "true" ? "here" : p.get("group") || "");
  g.restorePos = Number.parseInt(p.get("pos") || "0", 10) || 0;
  g.stale = true;
  show("gallery");
  g.restoring = false;
}

// Closing the viewer leaves the grid at the image it showed (scrolled to it, and marked).
function revealIndex(index) {
  const g = state.gallery;
  const scroll = $("grid-scroll");
  g.current = index;
  const top = Math.floor(index / g.cols) * g.cell;
  if (top < scroll.scrollTop || top + g.cell > scroll.scrollTop + scroll.clientHeight) {
    scroll.scrollTop = Math.max(0, top - Math.floor((scroll.clientHeight - g.cell) / 2));
  }
}

function loadWindow(w) {
  const g = state.gallery;
  const have = g.windows.get(w);
  if (have) { have.used = performance.now(); return have.promise; }
  const epoch = g.epoch;
  const params = filterParams();
  params.set("offset", String(w * WINDOW));
  params.set("limit", String(WINDOW));
  const entry = { items: null, used: performance.now(), promise: null };
  entry.promise = api(`/api/images?${params}`).then((page) => {
    if (epoch !== g.epoch) return;
    entry.items = page.items;
    if (page.total !== g.total) { g.total = page.total; }
    $("g-count").textContent = `${g.total.toLocaleString()} image${g.total === 1 ? "" : "s"}`;
    trimWindows();
    if (state.view === "gallery") renderGrid();
  });
  g.windows.set(w, entry);
  return entry.promise;
}

function trimWindows() {
  const g = state.gallery;
  if (g.windows.size <= MAX_WINDOWS) return;
  const oldest = [...g.windows.entries()].sort((a, b) => a[1].used - b[1].used);
  for (const [key] of oldest.slice(0, g.windows.size - MAX_WINDOWS)) g.windows.delete(key);
}

function itemAt(index) {
  const w = Math.floor(index / WINDOW);
  const entry = state.gallery.windows.get(w);
  if (!entry) { loadWindow(w); return null; }
  entry.used = performance.now();
  return entry.items ? entry.items[index - w * WINDOW] || null : null;
}

async function ensureItem(index) {
  await loadWindow(Math.floor(index / WINDOW));
  return itemAt(index);
}

function renderGrid() {
  const g = state.gallery;
  const scroll = $("grid-scroll");
  const grid = $("grid");
  g.cols = Math.max(1, Math.floor((scroll.clientWidth - 16) / g.cell));
  const rows = Math.ceil(g.total / g.cols);
  $("grid-space").style.height = `${rows * g.cell}px`;
  const first = Math.max(0, Math.floor(scroll.scrollTop / g.cell) - MARGIN_ROWS);
  const last = Math.min(rows, Math.ceil((scroll.scrollTop + scroll.clientHeight) / g.cell) + MARGIN_ROWS);
  grid.style.top = `${first * g.cell}px`;
  grid.style.gridTemplateColumns = `repeat(${g.cols}, var(--cell))`;
  const start = first * g.cols;
  const count = Math.max(0, Math.min(g.total, last * g.cols) - start);
  while (grid.children.length > count) {
    const cell = grid.lastElementChild;
    cell.firstElementChild.removeAttribute("src");   // release the decoded image
    cell.remove();
  }
  while (grid.children.length < count) {
    grid.append(el("div", { class: "cell" }, el("img", { alt: "", decoding: "async" })));
  }
  for (let j = 0; j < count; j += 1) {
    const cell = grid.children[j];
    const index = start + j;
    const item = itemAt(index);
    cell.dataset.index = String(index);
    const img = cell.firstElementChild;
    if (!item) { if (img.hasAttribute("src")) img.removeAttribute("src"); cell.dataset.id = ""; continue; }
    if (cell.dataset.id !== String(item.id)) {
      cell.dataset.id = String(item.id);
      // Until the thumbnail arrives the cell shows the image's dominant colour (from the catalog).
      img.style.backgroundColor = item.colour === null || item.colour === undefined ? ""
        : `#${item.colour.toString(16).padStart(6, "0")}`;
      img.src = thumbUrl(item.id);
      img.alt = item.prompt;
    }
    cell.classList.toggle("fav", item.favourite);
    cell.classList.toggle("rej", item.rejected);
    cell.classList.toggle("current", index === g.current);
  }
}

// ---- detail view -------------------------------------------------------------------------------
async function showDetail(id) {
  const d = state.detail;
  d.id = id;
  const record = await api(`/api/images/${id}`);
  if (d.id !== id) return;        // the user moved on meanwhile
  d.record = record;
  $("d-img").src = record.file_url;
  $("d-img").alt = record.params.prompt;
  // The server's infotext leaves out what the image does not say; `unknown` names those values.
  const unknown = record.unknown && record.unknown.length ? `\nnot recorded in the file: ${record.unknown.join(", ")}` : "";
  $("d-params").textContent = record.infotext + unknown
    + `\n\n${record.path}\nsource: ${record.source} · made ${new Date(record.created_at).toLocaleString()}`
    + (record.init_image_id ? `\nfrom image #${record.init_image_id}` : record.init_hash ? `\nfrom an image not in the catalog (${record.init_hash.slice(0, 12)})` : "")
    + (record.adherence === null ? "" : `\nadherence ${record.adherence.toFixed(4)}`)
    + (record.novelty === null ? "" : ` · novelty ${record.novelty.toFixed(3)}`);
  $("d-fav").classList.toggle("on", record.favourite);
  $("d-fav").textContent = record.favourite ? "★ favourite" : "☆ favourite";
  $("d-rej").textContent = record.rejected ? "un-reject" : "reject";
  $("d-delete").hidden = Boolean(record.trash_path);
  $("d-restore").hidden = !record.trash_path;
  showLineage(record);  // "from image #N" (img2img section)
}

async function openDetail(index) {
  const d = state.detail;
  const total = state.gallery.total;
  if (total === 0) return;
  index = Math.max(0, Math.min(total - 1, index));
  d.open = true; d.standalone = false; d.index = index;
  $("detail").hidden = false;
  $("d-pos").textContent = `${(index + 1).toLocaleString()} / ${total.toLocaleString()}`;
  const item = await ensureItem(index);
  if (item && d.index === index) await showDetail(item.id);
}

async function openStandalone(id) {
  const d = state.detail;
  d.open = true; d.standalone = true; d.index = -1;
  $("detail").hidden = false;
  $("d-pos").textContent = "";
  await showDetail(id);
}

function closeDetail() {
  state.detail.open = false;
  $("detail").hidden = true;
  $("d-img").removeAttribute("src");
  if (state.view === "gallery" && !state.detail.standalone && state.detail.index >= 0) revealIndex(state.detail.index);
  if (state.view === "gallery") renderGrid();
}

function step(delta) {
  const d = state.detail;
  if (!d.open || d.standalone) return;
  openDetail(d.index + delta);
}

async function toggleFlag(name) {
  const d = state.detail;
  if (!d.record) return;
  const record = await api(`/api/images/${d.record.id}`, { method: "PATCH", body: { [name]: !d.record[name] } });
  d.record = record;
  for (const entry of state.gallery.windows.values()) {
    const item = entry.items && entry.items.find((it) => it.id === record.id);
    if (item) item[name] = record[name];
  }
  await showDetail(record.id);
}

async function trashCurrent(restore = false) {
  const d = state.detail;
  if (!d.record) return;
  if (restore) await api(`/api/images/${d.record.id}/restore`, { method: "POST" });
  else await api(`/api/images/${d.record.id}`, { method: "DELETE" });
  state.gallery.stale = true;
  if (d.standalone) { closeDetail(); return; }
  await reloadGallery();
  if (state.gallery.total === 0) closeDetail(); else openDetail(d.index);
}

function reuseSettings() {
  const p = state.detail.record && state.detail.record.params;
  if (!p) return;
  applySettings(p);
  closeDetail();
  show("generate");
  $("prompt").focus();
}

// A run from the history: the settings of its first thumbnail (its best image); a run without
// images (failed, or all trashed) gives back its prompts only.
async function reuseRunSettings(run) {
  if (run.image_ids.length) applySettings((await api(`/api/images/${run.image_ids[0]}`)).params);
  else { $("prompt").value = run.prompt; $("negative_prompt").value = run.negative_prompt; }
  $("prompt").focus();
}

// Only what the image knows goes into the form (an imported PNG may not say its seed, steps, CFG,
// sampler or even its prompt: null or ""); the form keeps its own values for the rest, as A1111's
// "send to txt2img" does.
function applySettings(p) {
  const known = (value) => value !== null && value !== undefined && value !== "";
  for (const name of ["prompt", "negative_prompt", "seed", "steps", "cfg_scale"]) {
    if (known(p[name])) $(name).value = p[name];
  }
  if (known(p.prompt) && !known(p.negative_prompt)) $("negative_prompt").value = "";
  $("width").value = p.width || "";
  $("height").value = p.height || "";
  $("n_images").value = 1;
  if ([...$("sampler").options].some((o) => o.value === p.sampler)) $("sampler").value = p.sampler;
  const model = state.models.find((m) => (known(p.model_name) && m.model_name === p.model_name)
                                      || (known(p.model_hash) && m.hash === p.model_hash));
  if (model) $("model").value = model.value;
}

// ---- start -----------------------------------------------------------------------------------
async function loadChoices() {
  const [samplers, models] = await Promise.all([api("/sdapi/v1/samplers"), api("/api/models")]);
  $("sampler").replaceChildren(el("option", { value: "" }, "Automatic"),
    ...samplers.map((s) => el("option", { value: s.name }, s.name)));
  state.models = models.map((m) => ({ ...m, value: m.filename }));
  $("model").replaceChildren(...state.models.map((m) => el("option", { value: m.value }, m.model_name)));
  $("f-model").replaceChildren(el("option", { value: "" }, "any model"),
    ...state.models.map((m) => el("option", { value: m.model_name }, m.model_name)));
}

function bind() {
  for (const tab of document.querySelectorAll("nav [data-view]")) tab.addEventListener("click", () => show(tab.dataset.view));
  $("gen-form").addEventListener("submit", submitGenerate);
  $("cancel").addEventListener("click", cancelJob);
  let timer = null;
  for (const id of ["f-text", "f-model", "f-group", "f-since", "f-until", "f-fav", "f-hide-rej", "f-trash", "f-sort"]) {
    $(id).addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => { $("grid-scroll").scrollTop = 0; state.gallery.current = -1; reloadGallery(); rememberPlace(true); }, 200);
    });
  }
  $("import").addEventListener("click", async () => {
    const folder = window.prompt("Folder of PNGs to index in place (A1111, ComfyUI, InvokeAI or plain):");
    if (!folder) return;
    try { await api("/api/import", { method: "POST", body: { folder } }); $("import-status").textContent = "importing…"; }
    catch (error) { $("import-status").textContent = error.message; }
  });
  $("empty-trash").addEventListener("click", async () => { await api("/api/trash", { method: "DELETE" }); reloadGallery(); });
  let frame = 0;
  let placeTimer = null;
  $("grid-scroll").addEventListener("scroll", () => {
    cancelAnimationFrame(frame); frame = requestAnimationFrame(renderGrid);
    clearTimeout(placeTimer); placeTimer = setTimeout(() => rememberPlace(false), 300);
  });
  window.addEventListener("popstate", restorePlace);
  window.addEventListener("resize", () => { if (state.view === "gallery") renderGrid(); });
  $("grid").addEventListener("click", (e) => {
    const cell = e.target.closest(".cell");
    if (cell && cell.dataset.index) openDetail(Number(cell.dataset.index));
  });
  $("d-prev").addEventListener("click", () => step(-1));
  $("d-next").addEventListener("click", () => step(1));
  $("d-close").addEventListener("click", closeDetail);
  $("d-fav").addEventListener("click", () => toggleFlag("favourite"));
  $("d-rej").addEventListener("click", () => toggleFlag("rejected"));
  $("d-delete").addEventListener("click", () => trashCurrent(false));
  $("d-restore").addEventListener("click", () => trashCurrent(true));
  $("d-reuse").addEventListener("click", reuseSettings);
  document.addEventListener("keydown", (e) => {
    const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName);
    if (state.detail.open) {
      const keys = { ArrowLeft: () => step(-1), ArrowRight: () => step(1), Escape: closeDetail,
                     f: () => toggleFlag("favourite"), x: () => toggleFlag("rejected"), r: reuseSettings,
                     Delete: () => trashCurrent(false), i: () => sendToImg2img(state.detail.record, false),
                     u: upscaleCurrent };
      if (keys[e.key]) { e.preventDefault(); keys[e.key](); }
      return;
    }
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && state.view === "generate") { e.preventDefault(); $("generate").click(); }
    else if (e.altKey && e.key === "1") show("generate");
    else if (e.altKey && e.key === "2") show("gallery");
    else if (e.key === "/" && !typing) { e.preventDefault(); show("gallery"); $("f-text").focus(); }
    else if (e.key === "Enter" && state.view === "gallery" && !typing) openDetail(Number($("grid").firstElementChild?.dataset.index || 0));
  });
}

bind();
connectEvents();
// The URL's place is restored once the filter's choices (models, import groups) are there.
Promise.allSettled([loadChoices().catch((e) => { $("gen-error").textContent = e.message; }), loadGroups()])
  .then(restorePlace);
loadHistory().catch(() => {});
api("/api/machine").then((m) => m.worker && onMemory(m.worker)).catch(() => {});

// ---- networks: VAE and style choices, LoRA / embedding tags into the prompt, unload -------------
async function loadNetworks() {
  const [vaes, loras, embeddings, styles] = await Promise.all([api("/sdapi/v1/sd-vae"), api("/sdapi/v1/loras"),
    api("/sdapi/v1/embeddings"), api("/sdapi/v1/prompt-styles")]);
  $("vae").append(...vaes.map((v) => el("option", { value: v.model_name }, v.model_name)));
  $("style").append(...styles.map((s) => el("option", { value: s.name }, s.name)));
  const words = [...Object.keys(embeddings.loaded), ...Object.keys(embeddings.skipped)];
  $("network-pick").append(...loras.map((l) => el("option", { value: `<lora:${l.name}:1>` }, `LoRA: ${l.name}`)),
    ...words.map((w) => el("option", { value: w }, `embedding: ${w}`)));
}

function insertNetwork() {
  const text = $("network-pick").value;
  if (!text) return;
  const prompt = $("prompt");
  const at = prompt.selectionStart ?? prompt.value.length;
  const before = prompt.value.slice(0, at), after = prompt.value.slice(at);
  const gap = before && !/\s$/.test(before) ? " " : "";
  prompt.value = `${before}${gap}${text}${after}`;
  $("network-pick").value = "";
  prompt.focus();
}

async function unloadModel() {
  $("unload").disabled = true;
  try { await api("/sdapi/v1/unload-checkpoint", { method: "POST" }); } catch (e) { $("gen-error").textContent = e.message; }
  $("unload").disabled = false;
}

if ($("network-pick")) {
  $("network-pick").addEventListener("change", insertNetwork);
  $("unload").addEventListener("click", unloadModel);
  loadNetworks().catch(() => {});
}

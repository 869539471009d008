// Steady Diffusion studio page: starting from an image (img2img, inpainting) and upscaling.
// Loaded after app.js, whose helpers ($, el, api, state, show, applySettings, the detail view) it
// uses; app.js calls withSource (a run's request), decorateBest (the best-of-run strip),
// showLineage (the detail view) and the job and progress handlers below.
"use strict";

// ---- img2img and inpainting: the image a run starts from, and the mask painted on it ----------
// The image is uploaded once (POST /api/inputs), or named 'image:<id>' when it is a catalog image
// ("send to img2img"), so the run records where it came from. The mask is a canvas of the image's
// own size over it: white where the image is repainted (A1111's convention), uploaded with the run
// only when something is painted. Mouse and touch both paint; the eraser paints the mask away.
const init = { ref: null, width: 0, height: 0, painting: false, last: null };

function maskCanvas() { return $("mask-canvas"); }

async function setInitImage(src, ref, label) {
  const image = new Image();
  image.src = src;
  await image.decode();
  const w = image.naturalWidth, h = image.naturalHeight;
  for (const id of ["init-canvas", "mask-canvas"]) { $(id).width = w; $(id).height = h; }
  $("init-canvas").getContext("2d").drawImage(image, 0, 0);
  Object.assign(init, { ref, width: w, height: h, painting: false, last: null });
  $("mask-brush").max = String(Math.max(16, Math.max(w, h)));
  $("mask-brush").value = String(Math.max(2, Math.round(Math.max(w, h) / 8)));
  $("mask-editor").hidden = false;
  $("mask-tools").hidden = false;
  $("init-hint").hidden = true;
  $("img2img-panel").open = true;
  $("init-summary").textContent = `${label || "image"} · ${w}×${h}`;
}

function clearInitImage() {
  Object.assign(init, { ref: null, width: 0, height: 0, painting: false, last: null });
  $("mask-editor").hidden = true;
  $("mask-tools").hidden = true;
  $("init-hint").hidden = false;
  $("init-summary").textContent = "";
  $("init-file").value = "";
}

function readAsDataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

async function loadInitFile(file) {
  $("gen-error").textContent = "";
  try {
    if (!file || !file.type.startsWith("image/")) throw new Error("init image: that is not an image file");
    const data = await readAsDataUrl(file);
    const stored = await api("/api/inputs", { method: "POST", body: { image: data } });
    await setInitImage(data, stored.ref, file.name || "pasted image");
  } catch (error) {
    $("gen-error").textContent = error.message;
  }
}

function maskPoint(event) {
  const canvas = maskCanvas();
  const box = canvas.getBoundingClientRect();
  const p = event.touches ? event.touches[0] || event.changedTouches[0] : event;
  return { x: (p.clientX - box.left) * canvas.width / box.width, y: (p.clientY - box.top) * canvas.height / box.height };
}

function paintMask(point) {
  const ctx = maskCanvas().getContext("2d");
  ctx.globalCompositeOperation = $("mask-eraser").checked ? "destination-out" : "source-over";
  ctx.strokeStyle = ctx.fillStyle = "#fff";
  ctx.lineWidth = Number($("mask-brush").value);
  ctx.lineCap = ctx.lineJoin = "round";
  const from = init.last || point;
  ctx.beginPath();
  if (from === point) ctx.arc(point.x, point.y, ctx.lineWidth / 2, 0, 2 * Math.PI), ctx.fill();
  else { ctx.moveTo(from.x, from.y); ctx.lineTo(point.x, point.y); ctx.stroke(); }
  init.last = point;
}

function maskStart(event) { event.preventDefault(); init.painting = true; init.last = null; paintMask(maskPoint(event)); }
function maskMove(event) { if (!init.painting) return; event.preventDefault(); paintMask(maskPoint(event)); }
function maskEnd() { init.painting = false; init.last = null; }

function clearMask() {
  const canvas = maskCanvas();
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
}

function invertMask() {
  const canvas = maskCanvas();
  const ctx = canvas.getContext("2d");
  const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height);
  for (let i = 0; i < pixels.data.length; i += 4) {
    pixels.data[i] = pixels.data[i + 1] = pixels.data[i + 2] = 255;
    pixels.data[i + 3] = 255 - pixels.data[i + 3];
  }
  ctx.putImageData(pixels, 0, 0);
}

function maskIsEmpty() {
  const canvas = maskCanvas();
  if (!canvas.width) return true;
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) return false;
  return true;
}

// The mask as A1111 reads it: an opaque PNG, white where painted, black elsewhere.
function maskPng() {
  const canvas = maskCanvas();
  const out = el("canvas", { width: canvas.width, height: canvas.height });
  const ctx = out.getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, out.width, out.height);
  ctx.drawImage(canvas, 0, 0);
  return out.toDataURL("image/png");
}

// The run's request with its init image and mask (uploaded now), when the page has one.
async function withSource(body) {
  if (!init.ref) return body;
  body.init_image = init.ref;
  body.strength = Number.parseFloat($("strength").value);
  body.resize_mode = $("resize_mode").value;
  if (!maskIsEmpty()) {
    body.mask = (await api("/api/inputs", { method: "POST", body: { image: maskPng() } })).ref;
    body.mask_blur = Number.parseInt($("mask_blur").value, 10);
    body.masked_content = $("masked_content").value;
    body.only_masked = $("only_masked").checked;
    body.only_masked_padding = Number.parseInt($("only_masked_padding").value, 10);
  }
  return body;
}

// "Send to img2img / inpaint": the image's settings in the form, the image itself as the init image.
async function sendToImg2img(record, inpaint) {
  if (!record) return;
  applySettings(record.params);
  await setInitImage(record.file_url, `image:${record.id}`, `image #${record.id}`);
  clearMask();
  if (state.detail.open) closeDetail();
  show("generate");
  (inpaint ? $("mask-editor") : $("strength")).scrollIntoView({ block: "center" });
  $("notice").textContent = inpaint ? "Paint the part to repaint, then Generate." : "";
}

async function sendIdToImg2img(id, inpaint) {
  sendToImg2img(await api(`/api/images/${id}`), inpaint);
}

// The best-of-run strip: each image with its own "img2img" and "inpaint" buttons.
function decorateBest() {
  for (const img of [...$("best-strip").querySelectorAll(":scope > img")]) {
    const id = Number(img.dataset.id);
    const figure = el("figure", {}, el("div", { class: "row" },
      el("button", { type: "button", title: "send to img2img", onclick: () => sendIdToImg2img(id, false) }, "img2img"),
      el("button", { type: "button", title: "send to inpaint", onclick: () => sendIdToImg2img(id, true) }, "inpaint")));
    img.replaceWith(figure);
    figure.prepend(img);
  }
}

// Where an image came from (img2img, inpainting, an upscale): "from image #N", which opens it.
function showLineage(record) {
  const from = record.init_image_id;
  let box = $("d-lineage");
  if (!box) { box = el("span", { id: "d-lineage", class: "hint" }); $("d-from").append(box); }
  box.replaceChildren();
  if (from) box.append(el("a", { href: "#", onclick: (e) => { e.preventDefault(); openStandalone(from); } }, `from image #${from}`));
  else if (record.init_hash) box.textContent = `from an image not in the catalog (${record.init_hash.slice(0, 10)})`;
}

function bindImg2img() {
  const drop = $("init-drop");
  $("init-file").addEventListener("change", () => loadInitFile($("init-file").files[0]));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) loadInitFile(e.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (e) => {
    if (state.view !== "generate") return;
    const item = [...(e.clipboardData?.items || [])].find((i) => i.type.startsWith("image/"));
    if (item) { e.preventDefault(); loadInitFile(item.getAsFile()); }
  });
  const canvas = maskCanvas();
  canvas.addEventListener("mousedown", maskStart);
  canvas.addEventListener("mousemove", maskMove);
  window.addEventListener("mouseup", maskEnd);
  canvas.addEventListener("touchstart", maskStart, { passive: false });
  canvas.addEventListener("touchmove", maskMove, { passive: false });
  canvas.addEventListener("touchend", maskEnd);
  canvas.addEventListener("touchcancel", maskEnd);
  $("mask-clear").addEventListener("click", clearMask);
  $("mask-invert").addEventListener("click", invertMask);
  $("init-clear").addEventListener("click", clearInitImage);
  $("d-img2img").addEventListener("click", () => sendToImg2img(state.detail.record, false));
  $("d-inpaint").addEventListener("click", () => sendToImg2img(state.detail.record, true));
}

// ---- upscale: an image of the catalog enlarged by an upscaler (a job of the worker) ------------
const upscaling = new Map();  // job id -> the image it enlarges

async function loadUpscalers() {
  const list = await api("/api/upscalers");
  $("d-upscaler").replaceChildren(...list.filter((u) => u.name !== "None")
    .map((u) => el("option", { value: u.name }, u.model_path ? `${u.name} (${u.scale}×)` : u.name)));
}

async function upscaleCurrent() {
  const record = state.detail.record;
  if (!record) return;
  $("d-upscale-status").textContent = "queued…";
  try {
    const body = { image: `image:${record.id}`, upscaler: $("d-upscaler").value, scale: Number.parseFloat($("d-scale").value) };
    const result = await api("/api/upscale", { method: "POST", body });
    for (const job of result.jobs) upscaling.set(job.job_id, record.id);
    $("d-upscale-status").textContent = `queued: ${result.plans.join("; ")}`;
    $("d-upscale-status").title = result.plans.join("\n");
  } catch (error) {
    $("d-upscale-status").textContent = error.message;
  }
}

function onUpscaleJob(event) {
  if (!upscaling.has(event.job_id)) return;
  if (event.state === "running") { $("d-upscale-status").textContent = "upscaling…"; return; }  // the plan stays in its title
  if (!["done", "failed", "cancelled"].includes(event.state)) return;
  upscaling.delete(event.job_id);
  state.gallery.stale = true;
  if (event.state !== "done" || !event.image_ids.length) {
    $("d-upscale-status").textContent = `${event.state}: ${event.error || ""}`;
    return;
  }
  $("d-upscale-status").textContent = `done: image #${event.image_ids[0]}`;
  if (state.detail.open) openStandalone(event.image_ids[0]);
}

function onUpscaleProgress(event) {
  if (upscaling.has(event.job_id)) $("d-upscale-status").textContent = `upscaling: tile ${event.step}/${event.steps}`;
}

function bindUpscale() {
  $("d-upscale").addEventListener("click", upscaleCurrent);
  loadUpscalers().catch((error) => { $("d-upscale-status").textContent = error.message; });
}

bindImg2img();
bindUpscale();

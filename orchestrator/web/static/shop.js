// The shopper's page: photo -> click a garment -> pick one of SAM's masks -> similar products -> try one on.
// Uses only the public API (see /docs).

import { ApiError, formatPrice, productImageUrl, request, requestJson, safeLink, say, watchReadiness } from "./api.js";
import { MASK_COLOURS, paintRle } from "./masks.js";

const $ = (id) => document.getElementById(id);
const OVERLAY_MAX_SIDE = 1024;  // the overlay's resolution; the photo itself is shown at full size
const MOVE_FRACTION = 0.02;      // arrow keys move the cross by 2 % of the photo (Shift: 10 %)
const DRAG_MIN_PX = 8;           // a pointer moved further than this between down and up draws a box

const state = {
  image: null,          // {image_id, width, height, url, encoded}
  points: [],           // [{x, y, label}] in the photo's pixels
  box: null,            // {x0, y0, x1, y1}
  masks: [],            // [{score, rle}]
  chosen: -1,
  cursor: null,         // keyboard cross, photo pixels
  drag: null,
  maskRequest: null,    // AbortController of the click in flight
  product: null,
  tryonJob: null,
  tryonEvents: null,
};

const readiness = watchReadiness($("service-status"));

function reportFailure(element, error) {
  if (error.name === "AbortError") return;
  say(element, error.message, "error");
  if (error instanceof ApiError && error.transient) readiness.suspect();
}

// ------------------------------------------------------------------ 1. the photo

async function usePhoto(blob, name) {
  say($("photo-message"), `Uploading ${name}…`);
  const form = new FormData();
  form.append("file", blob, name);
  try {
    const uploaded = await requestJson("/v1/images", { method: "POST", body: form });
    if (state.image) URL.revokeObjectURL(state.image.url);
    state.image = { ...uploaded, url: URL.createObjectURL(blob), encoded: false };
    state.points = []; state.box = null; state.masks = []; state.chosen = -1; state.cursor = null;
    await showPhoto();
    say($("photo-message"), `Photo ready (${uploaded.width} × ${uploaded.height}). Now click a garment.`, "ok");
    $("segment-panel").hidden = false;
    $("person-use-photo").disabled = false;
    $("overlay").focus();
  } catch (error) {
    reportFailure($("photo-message"), error);
  }
}

function showPhoto() {
  return new Promise((resolve) => {
    const photo = $("photo");
    photo.onload = () => {
      const overlay = $("overlay");
      const scale = Math.min(1, OVERLAY_MAX_SIDE / Math.max(state.image.width, state.image.height));
      overlay.width = Math.max(1, Math.round(state.image.width * scale));
      overlay.height = Math.max(1, Math.round(state.image.height * scale));
      renderMasks();
      renderChoices();
      resolve();
    };
    photo.src = state.image.url;
  });
}

function bindPhotoInputs() {
  for (const input of [$("photo-file"), $("photo-camera")]) {
    input.addEventListener("change", () => {
      const file = input.files[0];
      if (file) usePhoto(file, file.name);
      input.value = "";
    });
  }
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("dragging"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    const file = event.dataTransfer.files[0];
    if (file) usePhoto(file, file.name);
  });
  for (const button of document.querySelectorAll("[data-sample]")) {
    button.addEventListener("click", async () => {
      const name = button.dataset.sample;
      try {
        const response = await request(`/ui/samples/${name}.jpg`);
        await usePhoto(await response.blob(), `${name}.jpg`);
      } catch (error) {
        reportFailure($("photo-message"), error);
      }
    });
  }
}

// ------------------------------------------------------------------ 2. clicks and masks

function photoPoint(event) {
  const overlay = $("overlay");
  const rect = overlay.getBoundingClientRect();
  const x = ((event.clientX - rect.left) / rect.width) * state.image.width;
  const y = ((event.clientY - rect.top) / rect.height) * state.image.height;
  return { x: clamp(x, 0, state.image.width - 1), y: clamp(y, 0, state.image.height - 1) };
}

function clamp(value, low, high) { return Math.min(high, Math.max(low, value)); }

function labelFor(event) {
  return event.shiftKey || $("negative-toggle").checked ? 0 : 1;
}

function bindStage() {
  const overlay = $("overlay");
  overlay.addEventListener("pointerdown", (event) => {
    if (!state.image) return;
    overlay.setPointerCapture(event.pointerId);
    state.drag = { start: photoPoint(event), client: [event.clientX, event.clientY], label: labelFor(event) };
  });
  overlay.addEventListener("pointermove", (event) => {
    if (!state.drag) return;
    const end = photoPoint(event);
    state.drag.end = end;
    renderMasks();
  });
  overlay.addEventListener("pointerup", (event) => {
    const drag = state.drag;
    state.drag = null;
    if (!drag) return;
    const moved = Math.hypot(event.clientX - drag.client[0], event.clientY - drag.client[1]);
    const end = photoPoint(event);
    if (moved > DRAG_MIN_PX) {
      state.box = { x0: Math.min(drag.start.x, end.x), y0: Math.min(drag.start.y, end.y),
                    x1: Math.max(drag.start.x, end.x), y1: Math.max(drag.start.y, end.y) };
    } else {
      state.points.push({ x: Math.round(end.x), y: Math.round(end.y), label: drag.label });
    }
    segment();
  });
  overlay.addEventListener("keydown", (event) => {
    if (!state.image) return;
    const step = (event.shiftKey ? 5 : 1) * MOVE_FRACTION;
    const cursor = state.cursor || { x: state.image.width / 2, y: state.image.height / 2 };
    const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (event.key in moves) {
      const [dx, dy] = moves[event.key];
      state.cursor = { x: clamp(cursor.x + dx * step * state.image.width, 0, state.image.width - 1),
                       y: clamp(cursor.y + dy * step * state.image.height, 0, state.image.height - 1) };
      renderMasks();
      event.preventDefault();
    } else if (event.key === "Enter" || event.key === " ") {
      state.cursor = cursor;
      state.points.push({ x: Math.round(cursor.x), y: Math.round(cursor.y), label: labelFor(event) });
      segment();
      event.preventDefault();
    } else if (event.key === "Escape") {
      clearPoints();
    }
  });
  $("clear-points").addEventListener("click", clearPoints);
}

function clearPoints() {
  state.points = []; state.box = null; state.masks = []; state.chosen = -1;
  if (state.maskRequest) state.maskRequest.abort();
  renderMasks();
  renderChoices();
  say($("segment-message"), "Points cleared.");
}

async function segment() {
  if (!state.points.length && !state.box) return;
  if (state.maskRequest) state.maskRequest.abort();
  const controller = new AbortController();
  state.maskRequest = controller;
  const image = state.image;
  $("stage").classList.add("busy");
  say($("segment-message"), image.encoded ? "Finding the garment…"
    : "Encoding the photo: the first click on a new photo takes a moment…");
  renderMasks();
  try {
    const body = { points: state.points, format: "rle" };
    if (state.box) body.box = state.box;
    const answer = await requestJson(`/v1/images/${encodeURIComponent(image.image_id)}/masks`,
      { method: "POST", json: body, signal: controller.signal });
    if (state.image !== image) return;  // another photo came meanwhile
    image.encoded = true;
    state.masks = answer.masks;
    state.chosen = state.masks.length ? 0 : -1;
    say($("segment-message"), state.masks.length
      ? `${state.masks.length} masks, best first. Pick the one that covers the garment, then search.`
      : "No garment found there; click somewhere else.", state.masks.length ? "ok" : "error");
  } catch (error) {
    reportFailure($("segment-message"), error);
  } finally {
    if (state.maskRequest === controller) {
      state.maskRequest = null;
      $("stage").classList.remove("busy");
    }
    renderMasks();
    renderChoices();
  }
}

function renderMasks() {
  const overlay = $("overlay");
  const context = overlay.getContext("2d");
  context.clearRect(0, 0, overlay.width, overlay.height);
  if (!state.image) return;
  if (state.chosen >= 0 && state.masks[state.chosen]) {
    const pixels = context.createImageData(overlay.width, overlay.height);
    paintRle(state.masks[state.chosen].rle, pixels, MASK_COLOURS[state.chosen % MASK_COLOURS.length]);
    context.putImageData(pixels, 0, 0);
  }
  const sx = overlay.width / state.image.width;
  const sy = overlay.height / state.image.height;
  const radius = Math.max(4, overlay.width / 90);
  for (const point of state.points) {
    context.beginPath();
    context.arc(point.x * sx, point.y * sy, radius, 0, 2 * Math.PI);
    context.fillStyle = point.label ? "#1d6b35" : "#a4161a";
    context.fill();
    context.lineWidth = 2;
    context.strokeStyle = "#ffffff";
    context.stroke();
  }
  const box = state.drag && state.drag.end
    ? { x0: state.drag.start.x, y0: state.drag.start.y, x1: state.drag.end.x, y1: state.drag.end.y } : state.box;
  if (box) {
    context.lineWidth = 2;
    context.setLineDash([6, 4]);
    context.strokeStyle = "#0b5cad";
    context.strokeRect(box.x0 * sx, box.y0 * sy, (box.x1 - box.x0) * sx, (box.y1 - box.y0) * sy);
    context.setLineDash([]);
  }
  if (state.cursor) {
    const [x, y] = [state.cursor.x * sx, state.cursor.y * sy];
    context.strokeStyle = "#000000";
    context.lineWidth = 3;
    context.beginPath(); context.moveTo(x - 12, y); context.lineTo(x + 12, y);
    context.moveTo(x, y - 12); context.lineTo(x, y + 12); context.stroke();
    context.strokeStyle = "#ffbf47";
    context.lineWidth = 1.5;
    context.stroke();
  }
}

function renderChoices() {
  const list = $("mask-list");
  list.replaceChildren();
  $("mask-choices").hidden = state.masks.length === 0;
  state.masks.forEach((mask, index) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "mask-choice";
    button.setAttribute("aria-pressed", String(index === state.chosen));
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = `rgb(${MASK_COLOURS[index % MASK_COLOURS.length].join(",")})`;
    const text = document.createElement("span");
    text.textContent = `Mask ${index + 1}: score ${mask.score.toFixed(2)}`;
    button.append(swatch, text);
    button.addEventListener("click", () => {
      state.chosen = index;
      renderMasks();
      renderChoices();
      list.children[index].focus();
    });
    list.append(button);
  });
}

// ------------------------------------------------------------------ 3. search

function searchBody() {
  const body = { k: 20, filters: {} };
  const text = $("search-text").value.trim();
  if (text) body.text = text;
  if (state.image && state.chosen >= 0) {
    body.image_id = state.image.image_id;
    body.mask = { rle: state.masks[state.chosen].rle };
    if (text) body.image_weight = Number($("image-weight").value);
  }
  const category = $("filter-category").value.trim().toLowerCase();
  if (category) body.filters.category = [category];
  const brand = $("filter-brand").value.trim();
  if (brand) body.filters.brand = [brand];
  for (const [id, key] of [["filter-min-price", "min_price"], ["filter-max-price", "max_price"]]) {
    const value = $(id).value;
    if (value !== "") body.filters[key] = Number(value);
  }
  if ($("filter-tryon").checked) body.filters.tryon_ready = true;
  return body;
}

async function search(event) {
  event.preventDefault();
  const body = searchBody();
  if (!body.text && !body.mask) {
    say($("search-message"), "Click a garment and pick a mask, or type what you are looking for.", "error");
    return;
  }
  const button = $("search-button");
  button.disabled = true;
  say($("search-message"), "Searching…");
  try {
    const answer = await requestJson("/v1/search", { method: "POST", json: body });
    renderResults(answer.results);
    say($("search-message"), answer.results.length ? `${answer.results.length} products, most similar first.`
      : "No product matches; loosen the filters.", answer.results.length ? "ok" : "");
  } catch (error) {
    reportFailure($("search-message"), error);
  } finally {
    button.disabled = false;
  }
}

function renderResults(results) {
  const list = $("results");
  list.replaceChildren();
  for (const { score, product } of results) {
    const card = document.createElement("li");
    card.className = "card";
    card.dataset.productId = product.product_id;
    const image = document.createElement("img");
    image.loading = "lazy";
    image.alt = product.name;
    image.src = productImageUrl(product.product_id);
    const brand = paragraph("brand", product.brand);
    const name = paragraph("name", product.name);
    const meta = document.createElement("p");
    meta.className = "meta";
    const price = document.createElement("span");
    price.textContent = formatPrice(product.price);
    const similarity = document.createElement("span");
    similarity.textContent = `similarity ${score.toFixed(2)}`;
    meta.append(price, similarity);
    const badge = document.createElement("span");
    badge.className = `badge ${product.tryon_ready ? "ready" : "unready"}`;
    badge.textContent = product.tryon_ready ? "try-on ready" : "not for try-on";
    const actions = document.createElement("p");
    actions.className = "row-actions";
    const link = safeLink(product.link);
    if (link) {
      const shop = document.createElement("a");
      shop.href = link;
      shop.target = "_blank";
      shop.rel = "noopener noreferrer";
      shop.textContent = "Shop";
      shop.setAttribute("aria-label", `Shop: ${product.name} (opens a new tab)`);
      actions.append(shop);
    }
    const tryButton = document.createElement("button");
    tryButton.type = "button";
    tryButton.className = "secondary";
    tryButton.textContent = "Try on";
    tryButton.setAttribute("aria-label", `Try on ${product.name}`);
    tryButton.addEventListener("click", () => chooseProduct(product, card));
    actions.append(tryButton);
    card.append(image, brand, name, meta, badge, actions);
    list.append(card);
  }
}

function paragraph(className, text) {
  const element = document.createElement("p");
  element.className = className;
  element.textContent = text;
  return element;
}

// ------------------------------------------------------------------ 4. try-on

function chooseProduct(product, card) {
  state.product = product;
  for (const other of document.querySelectorAll(".card[aria-current]")) other.removeAttribute("aria-current");
  card.setAttribute("aria-current", "true");
  $("tryon-panel").hidden = false;
  $("tryon-product").textContent = `Product: ${product.brand} ${product.name}` +
    (product.tryon_ready ? "" : " (its photo was judged not usable for try-on; the service will refuse it)");
  $("person-use-photo").disabled = !state.image;
  say($("tryon-message"), "");
  $("tryon-start").focus();
}

async function startTryon(event) {
  event.preventDefault();
  if (!state.product) return;
  const form = new FormData();
  form.append("product_id", state.product.product_id);
  const source = document.querySelector("input[name=person-source]:checked").value;
  let originalUrl;
  if (source === "photo") {
    if (!state.image) { say($("tryon-message"), "Upload a photo in step 1 first.", "error"); return; }
    form.append("image_id", state.image.image_id);
    originalUrl = state.image.url;
  } else {
    const file = $("person-file").files[0];
    if (!file) { say($("tryon-message"), "Choose a full-body photo of yourself first.", "error"); return; }
    form.append("file", file, file.name);
    originalUrl = URL.createObjectURL(file);
  }
  closeEvents();
  $("tryon-result").hidden = true;
  $("tryon-progress").value = 0;
  $("tryon-start").disabled = true;
  say($("tryon-message"), "Starting the try-on…");
  try {
    const job = await requestJson("/v1/tryon", { method: "POST", body: form });
    state.tryonJob = job;
    $("tryon-original").src = originalUrl;
    $("tryon-cancel").hidden = false;
    showJob(job);
    followJob(job.job_id);
  } catch (error) {
    $("tryon-start").disabled = false;
    reportFailure($("tryon-message"), error);
  }
}

function followJob(jobId) {
  const events = new EventSource(`/v1/tryon/${encodeURIComponent(jobId)}/events`);
  state.tryonEvents = events;
  events.addEventListener("progress", (message) => showJob(JSON.parse(message.data)));
  events.addEventListener("done", (message) => { closeEvents(); finishJob(JSON.parse(message.data)); });
  events.onerror = () => {  // the stream broke (proxy timeout, server restart): poll instead
    closeEvents();
    pollJob(jobId);
  };
}

async function pollJob(jobId) {
  try {
    const job = await requestJson(`/v1/tryon/${encodeURIComponent(jobId)}`);
    if (["succeeded", "failed", "cancelled"].includes(job.status)) { finishJob(job); return; }
    showJob(job);
    setTimeout(() => pollJob(jobId), 1000);
  } catch (error) {
    reportFailure($("tryon-message"), error);
    $("tryon-start").disabled = false;
    $("tryon-cancel").hidden = true;
  }
}

function closeEvents() {
  if (state.tryonEvents) state.tryonEvents.close();
  state.tryonEvents = null;
}

function showJob(job) {
  const progress = $("tryon-progress");
  progress.max = Math.max(1, job.total_steps);
  progress.value = job.step;
  const words = { queued: "Waiting for a free try-on slot…", preparing: "Finding the person and the garment…",
                  running: `Dressing: step ${job.step} of ${job.total_steps}…` };
  say($("tryon-message"), words[job.status] || job.status);
}

async function finishJob(job) {
  state.tryonJob = null;
  $("tryon-start").disabled = false;
  $("tryon-cancel").hidden = true;
  if (job.status === "cancelled") { say($("tryon-message"), "Cancelled."); return; }
  if (job.status === "failed") {
    say($("tryon-message"), job.error ? job.error.message : "The try-on failed.", "error");
    return;
  }
  $("tryon-progress").value = $("tryon-progress").max;
  try {
    const blob = await (await request(job.result_url)).blob();
    const url = URL.createObjectURL(blob);
    $("tryon-image").src = url;
    $("tryon-download").href = url;
    $("tryon-result").hidden = false;
    say($("tryon-message"), "Done. Your photo and the result, side by side.", "ok");
  } catch (error) {
    reportFailure($("tryon-message"), error);
  }
}

async function cancelTryon() {
  const job = state.tryonJob;
  if (!job) return;
  try {
    const answer = await requestJson(`/v1/tryon/${encodeURIComponent(job.job_id)}`, { method: "DELETE" });
    if (["succeeded", "failed", "cancelled"].includes(answer.status)) { closeEvents(); finishJob(answer); }
  } catch (error) {
    reportFailure($("tryon-message"), error);
  }
}

// ------------------------------------------------------------------ wiring

bindPhotoInputs();
bindStage();
$("search-form").addEventListener("submit", search);
$("image-weight").addEventListener("input", () => {
  $("image-weight-value").textContent = Number($("image-weight").value).toFixed(2);
});
$("tryon-form").addEventListener("submit", startTryon);
$("tryon-cancel").addEventListener("click", cancelTryon);
$("person-use-photo").disabled = true;

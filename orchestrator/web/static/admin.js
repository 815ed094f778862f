// The catalog admin page: CSV import with progress and its error report; browse, edit and delete products.
// Every catalog-changing call carries the admin token (Authorization: Bearer), as the API requires.

import { ApiError, formatPrice, productImageUrl, requestJson, say, watchReadiness } from "./api.js";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "snapfit.adminToken";
const POLL_MS = 500;
const PAGE_SIZE = 50;
const readiness = watchReadiness($("service-status"));

const state = { token: sessionStorage.getItem(TOKEN_KEY) || "", after: null, query: "", products: new Map(), editing: null,
                failedImport: null };

function reportFailure(element, error) {
  say(element, error.message, "error");
  if (error instanceof ApiError && error.transient) readiness.suspect();
  if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
    say($("token-message"), "Enter the admin token above: the server refused this one.", "error");
    $("admin-token").focus();
  }
}

// ------------------------------------------------------------------ token

function bindToken() {
  $("admin-token").value = state.token;
  say($("token-message"), state.token ? "A token is set for this tab." : "No token yet: importing, editing and deleting need it.");
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = $("admin-token").value.trim();
    sessionStorage.setItem(TOKEN_KEY, state.token);
    say($("token-message"), state.token ? "Token set for this tab." : "No token set.", state.token ? "ok" : "");
  });
  $("forget-token").addEventListener("click", () => {
    state.token = "";
    sessionStorage.removeItem(TOKEN_KEY);
    $("admin-token").value = "";
    say($("token-message"), "Token forgotten.");
  });
}

// ------------------------------------------------------------------ import

async function startImport(event) {
  event.preventDefault();
  const file = $("import-file").files[0];
  if (!file) { say($("import-message"), "Choose a CSV file first.", "error"); return; }
  const form = new FormData();
  form.append("file", file, file.name);
  const baseDir = $("import-base-dir").value.trim();
  if (baseDir) form.append("base_dir", baseDir);
  $("import-start").disabled = true;
  $("import-errors").hidden = true;
  $("import-progress").value = 0;
  say($("import-message"), `Uploading ${file.name}…`);
  try {
    const job = await requestJson("/v1/catalog/imports", { method: "POST", body: form, token: state.token });
    showImport(job);
    await followImport(job.job_id);
  } catch (error) {
    reportFailure($("import-message"), error);
  } finally {
    $("import-start").disabled = false;
  }
}

/** Takes a failed import up again after its last finished batch (the server kept its rows and its CSV). */
async function resumeImport() {
  const jobId = state.failedImport;
  if (!jobId) return;
  $("import-resume").hidden = true;
  say($("import-message"), "Resuming the import…");
  try {
    const job = await requestJson(`/v1/catalog/imports/${encodeURIComponent(jobId)}/resume`,
                                  { method: "POST", token: state.token });
    showImport(job);
    await followImport(job.job_id);
  } catch (error) {
    reportFailure($("import-message"), error);
  }
}

async function followImport(jobId) {
  for (;;) {
    let job;
    try {
      job = await requestJson(`/v1/catalog/imports/${encodeURIComponent(jobId)}`);
    } catch (error) {
      if (!(error instanceof ApiError) || !error.transient) throw error;
      say($("import-message"), `${error.message} The import goes on in the server; still watching…`, "error");
      await sleep(2000);
      continue;
    }
    showImport(job);
    if (job.status === "succeeded" || job.status === "failed") {
      loadProducts(true);
      return;
    }
    await sleep(POLL_MS);
  }
}

function showImport(job) {
  const progress = $("import-progress");
  progress.max = Math.max(1, job.total_rows);
  progress.value = job.processed_rows;
  const words = { queued: "Queued…", running: `Importing: ${job.processed_rows} of ${job.total_rows} rows…`,
                  succeeded: `Done: ${job.processed_rows} of ${job.total_rows} rows processed.`,
                  failed: `The import stopped: ${job.message}` };
  say($("import-message"), words[job.status] || job.status,
      job.status === "failed" ? "error" : job.status === "succeeded" ? "ok" : "");
  state.failedImport = job.status === "failed" ? job.job_id : null;
  $("import-resume").hidden = job.status !== "failed";
  const counts = $("import-counts");
  counts.replaceChildren(...["inserted", "updated", "unchanged", "failed"].map((key) => {
    const item = document.createElement("li");
    item.textContent = `${key}: ${job[key]}`;
    return item;
  }), Object.assign(document.createElement("li"), { textContent: `${job.rows_per_second} rows/s` }));
  const rows = $("import-error-rows");
  rows.replaceChildren(...job.errors.map((error) => {
    const row = document.createElement("tr");
    for (const value of [error.line, error.product_id ?? "", error.message]) {
      const cell = document.createElement("td");
      cell.textContent = String(value);
      row.append(cell);
    }
    return row;
  }));
  $("import-errors").hidden = job.errors.length === 0;
  if (job.errors.length) {
    const link = $("import-error-download");
    if (link.href.startsWith("blob:")) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(new Blob([errorReportCsv(job.errors)], { type: "text/csv;charset=utf-8" }));
  }
}

/** The per-row errors as CSV; a cell a spreadsheet would run as a formula (= + - @ tab CR) is quoted with '. */
export function errorReportCsv(errors) {
  const cell = (value) => {
    let text = String(value ?? "");
    if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
    return `"${text.replaceAll("\"", "\"\"")}"`;
  };
  const lines = [["line", "product_id", "message"].map(cell).join(",")];
  for (const error of errors) lines.push([error.line, error.product_id, error.message].map(cell).join(","));
  return `\ufeff${lines.join("\r\n")}\r\n`;
}

function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

// ------------------------------------------------------------------ products

async function loadProducts(fresh) {
  if (fresh) {
    state.after = null;
    state.products.clear();
    $("product-rows").replaceChildren();
  }
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (state.after) params.set("after", state.after);
  if (state.query) params.set("q", state.query);
  say($("products-message"), "Loading products…");
  try {
    const page = await requestJson(`/v1/products?${params}`);
    for (const product of page.products) addRow(product);
    state.after = page.next_after;
    $("products-more").hidden = !page.next_after;
    say($("products-message"), `${state.products.size} of ${page.total} products shown.`);
  } catch (error) {
    reportFailure($("products-message"), error);
  }
}

function addRow(product) {
  state.products.set(product.product_id, product);
  const row = document.createElement("tr");
  row.dataset.productId = product.product_id;
  fillRow(row, product);
  $("product-rows").append(row);
}

function fillRow(row, product) {
  const image = document.createElement("img");
  image.loading = "lazy";
  image.alt = product.name;
  image.src = productImageUrl(product.product_id);
  const cells = [image, product.product_id, product.name, product.brand, formatPrice(product.price), product.category,
                 product.tryon_ready ? "ready" : "no"];
  row.replaceChildren(...cells.map((value) => {
    const cell = document.createElement("td");
    if (value instanceof Node) cell.append(value); else cell.textContent = String(value ?? "");
    return cell;
  }));
  const actions = document.createElement("td");
  actions.className = "row-actions";
  const edit = document.createElement("button");
  edit.type = "button";
  edit.className = "secondary";
  edit.textContent = "Edit";
  edit.setAttribute("aria-label", `Edit ${product.product_id}`);
  edit.addEventListener("click", () => openEditor(product.product_id));
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "secondary";
  remove.textContent = "Delete";
  remove.setAttribute("aria-label", `Delete ${product.product_id}`);
  remove.addEventListener("click", () => deleteProduct(product.product_id, row));
  actions.append(edit, remove);
  row.append(actions);
}

function openEditor(productId) {
  const product = state.products.get(productId);
  state.editing = productId;
  $("edit-id").textContent = `Product ${productId}`;
  $("edit-name").value = product.name;
  $("edit-brand").value = product.brand;
  $("edit-price").value = product.price ?? "";
  $("edit-category").value = product.category;
  $("edit-link").value = product.link;
  $("edit-tags").value = product.tags.join(", ");
  $("edit-tryon").checked = product.tryon_ready;
  say($("edit-message"), "");
  $("edit-dialog").showModal();
}

async function saveEdit(event) {
  event.preventDefault();
  const productId = state.editing;
  const changes = {
    name: $("edit-name").value.trim(), brand: $("edit-brand").value.trim(),
    category: $("edit-category").value.trim(), link: $("edit-link").value.trim(),
    tags: $("edit-tags").value.split(",").map((tag) => tag.trim()).filter(Boolean),
    tryon_ready: $("edit-tryon").checked,
  };
  const price = $("edit-price").value;
  if (price !== "") changes.price = Number(price);
  $("edit-save").disabled = true;
  try {
    const product = await requestJson(`/v1/products/${encodeURIComponent(productId)}`,
      { method: "PATCH", json: changes, token: state.token });
    state.products.set(productId, product);
    const row = document.querySelector(`tr[data-product-id="${CSS.escape(productId)}"]`);
    if (row) fillRow(row, product);
    $("edit-dialog").close();
    say($("products-message"), `Saved ${productId}.`, "ok");
  } catch (error) {
    reportFailure($("edit-message"), error);
  } finally {
    $("edit-save").disabled = false;
  }
}

async function deleteProduct(productId, row) {
  if (!window.confirm(`Delete product ${productId}? It disappears from search at once.`)) return;
  try {
    await requestJson(`/v1/products/${encodeURIComponent(productId)}`, { method: "DELETE", token: state.token });
    row.remove();
    state.products.delete(productId);
    say($("products-message"), `Deleted ${productId}.`, "ok");
  } catch (error) {
    reportFailure($("products-message"), error);
  }
}

// ------------------------------------------------------------------ wiring

bindToken();
$("import-form").addEventListener("submit", startImport);
$("import-resume").addEventListener("click", resumeImport);
$("products-filter").addEventListener("submit", (event) => {
  event.preventDefault();
  state.query = $("products-query").value.trim();
  loadProducts(true);
});
$("products-more").addEventListener("click", () => loadProducts(false));
$("edit-form").addEventListener("submit", saveEdit);
$("edit-cancel").addEventListener("click", () => $("edit-dialog").close());
loadProducts(true);

// The orchestrator's public HTTP API (documented at /docs), as the two pages call it: every failure becomes an
// ApiError whose message a shopper can read.

export class ApiError extends Error {
  constructor(message, { status = 0, code = "network", retryAfterS = null } = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfterS = retryAfterS;
  }

  /** true when the service (or one of its models) is down or busy, so trying again later may work */
  get transient() {
    return this.status === 0 || this.status === 429 || this.status === 502 || this.status === 503 || this.status === 504;
  }
}

const PLAIN_WORDS = {
  network: "The service cannot be reached. Check your connection; the page keeps trying.",
  model_unavailable: "The service is starting up or one of its models is down. Please try again in a moment.",
  store_unavailable: "The catalog is unavailable right now. Please try again in a moment.",
  overloaded: "The service is busy. Please try again in a moment.",
  rate_limited: "Too many requests from this browser. Please wait a moment.",
  unauthorized: "This needs the admin token.",
  forbidden: "The admin token was not accepted.",
};

/** fetch() that throws ApiError for transport failures and non-2xx answers, with the API's own message. */
export async function request(path, { method = "GET", body = undefined, json = undefined, token = null,
                                      headers = {}, signal = undefined } = {}) {
  const sent = { method, headers: { ...headers }, signal };
  if (json !== undefined) {
    sent.body = JSON.stringify(json);
    sent.headers["Content-Type"] = "application/json";
  } else if (body !== undefined) {
    sent.body = body;
  }
  if (token) sent.headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, sent);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(PLAIN_WORDS.network);
  }
  if (response.ok) return response;
  let code = `http_${response.status}`;
  let message = `The service answered ${response.status}.`;
  try {
    const detail = (await response.json()).error;
    if (detail && detail.code) {
      code = detail.code;
      message = detail.message;
    }
  } catch { /* not our error body (a proxy's page): keep the status line */ }
  const retryAfter = Number(response.headers.get("Retry-After"));
  const plain = PLAIN_WORDS[code];
  // the API's message says what exactly went wrong; the plain words say what it means for the person
  const text = plain && !["unauthorized", "forbidden"].includes(code) ? `${plain} (${message})` : message;
  throw new ApiError(text, { status: response.status, code, retryAfterS: Number.isFinite(retryAfter) ? retryAfter : null });
}

export async function requestJson(path, options) {
  const response = await request(path, options);
  return response.status === 204 ? null : response.json();
}

/** Watches /readyz while `isWanted()`: shows `banner` while the service is not ready, hides it when it is. */
export function watchReadiness(banner, { intervalMs = 3000 } = {}) {
  let timer = null;
  let failing = false;

  async function check() {
    timer = null;
    let ready = false;
    try {
      ready = (await fetch("/readyz", { cache: "no-store" })).ok;
    } catch { ready = false; }
    if (ready) {
      if (failing) {
        banner.textContent = "The service is back.";
        banner.classList.remove("error");
        setTimeout(() => { if (!failing) banner.hidden = true; }, 4000);
      }
      failing = false;
      return;
    }
    failing = true;
    banner.hidden = false;
    banner.classList.add("error");
    banner.textContent = "The service is unavailable right now (its models are starting or down). " +
      "This page checks again every few seconds.";
    timer = setTimeout(check, intervalMs);
  }

  return {
    /** called after a failed request: starts watching unless a watch is already running */
    suspect() { if (timer === null) check(); },
  };
}

/** Formats a price the way the catalog stores it (KRW when large whole numbers). */
export function formatPrice(price) {
  if (price === null || price === undefined) return "";
  return Number.isInteger(price) && price >= 1000 ? `₩${price.toLocaleString("ko-KR")}` : price.toLocaleString();
}

/** Only http(s) links from the catalog become clickable (never javascript: or data:). */
export function safeLink(link) {
  try {
    const url = new URL(link, window.location.href);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

export function productImageUrl(productId) {
  return `/v1/products/${encodeURIComponent(productId)}/image`;
}

/** Sets an element's text and its state class (message | message error | message ok). */
export function say(element, text, kind = "") {
  element.textContent = text;
  element.className = `message ${kind}`.trim();
}

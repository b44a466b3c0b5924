// The page to try the service: search, like, get a slate, click or skip, repeat.
// Every URL is relative, so the page also works when the service sits under a path prefix.
"use strict";

const KEY_STORAGE = "metarec.apiKey";
const USER_STORAGE = "metarec.userId";
const SLATE_SIZE = 10;
const SEARCH_LIMIT = 20;
// A liked item is sent as a top rating, which the service reads as part of the user's history.
const LIKE_RATING = 5;

const state = {
  userId: "",
  titles: new Map(),
  liked: new Set(),
  slate: [],
  outcomes: new Map(),
  round: 0,
  busy: false,
};

const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(message, status = 0) {
    super(message);
    this.status = status;
  }
}

// crypto.randomUUID exists only in secure contexts (https or localhost), so other origins
// build the same version-4 UUID from crypto.getRandomValues.
function newUuid() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const key = $("api-key").value.trim();
  if (key) headers["X-API-Key"] = key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError(`Request failed: the service is unreachable (${error.message}).`);
  }
  const payload = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(describeError(response, payload), response.status);
  return payload;
}

function describeError(response, payload) {
  const detail = payload && payload.error;
  if (!detail) return `Request failed with HTTP ${response.status} ${response.statusText}.`;
  const field = detail.field ? ` (field: ${detail.field})` : "";
  return `Request failed with HTTP ${response.status}, ${detail.code}: ${detail.message}${field}`;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

// Run one user action at a time and show its error, so a double click cannot send twice.
async function act(action) {
  if (state.busy) return;
  state.busy = true;
  updateButtons();
  try {
    await action();
    showError("");
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    showError(error.message);
  } finally {
    state.busy = false;
    updateButtons();
  }
}

function updateButtons() {
  for (const button of document.querySelectorAll("button")) button.disabled = state.busy;
  $("skip-slate").disabled = state.busy || state.slate.length === 0;
  for (const item of document.querySelectorAll("#slate li")) {
    const decided = state.outcomes.has(item.dataset.itemId);
    for (const button of item.querySelectorAll("button")) button.disabled ||= decided;
  }
  for (const item of document.querySelectorAll("#results li")) {
    item.querySelector("button").disabled ||= state.liked.has(item.dataset.itemId);
  }
}

function titleOf(itemId) {
  return state.titles.get(itemId) || `Item ${itemId}`;
}

// Recommendations carry item ids only, so unknown titles are looked up through search,
// which lists an exact id match first.
async function loadTitles(itemIds) {
  const missing = itemIds.filter((id) => !state.titles.has(id));
  await Promise.all(
    missing.map(async (id) => {
      const found = await api("GET", `v1/items?q=${encodeURIComponent(id)}&limit=1`);
      const match = found.items.find((item) => item.item_id === id);
      if (match && match.title) state.titles.set(id, match.title);
    }),
  );
}

function itemRow(itemId, meta, buttons) {
  const row = document.createElement("li");
  row.dataset.itemId = itemId;
  const title = document.createElement("span");
  title.className = "title";
  title.textContent = titleOf(itemId);
  row.append(title);
  if (meta) {
    const extra = document.createElement("span");
    extra.className = "meta";
    extra.textContent = meta;
    row.append(extra);
  }
  for (const [label, onClick] of buttons) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = label;
    button.setAttribute("aria-label", `${label} ${titleOf(itemId)}`);
    button.addEventListener("click", onClick);
    row.append(button);
  }
  return row;
}

function event(itemId, type, value = null) {
  return { event_id: newUuid(), user_id: state.userId, item_id: itemId, type, value };
}

async function search(query) {
  const found = await api("GET", `v1/items?q=${encodeURIComponent(query)}&limit=${SEARCH_LIMIT}`);
  for (const item of found.items) state.titles.set(item.item_id, item.title);
  const rows = found.items.map((item) =>
    itemRow(item.item_id, `id ${item.item_id}`, [["Like", () => act(() => like(item.item_id))]]),
  );
  $("results").replaceChildren(...(rows.length > 0 ? rows : [note(`No item matches "${query}".`)]));
}

function note(text) {
  const row = document.createElement("li");
  row.className = "hint";
  row.textContent = text;
  return row;
}

async function like(itemId) {
  await api("POST", "v1/events", { events: [event(itemId, "rating", LIKE_RATING)] });
  state.liked.add(itemId);
  renderLiked();
}

function renderLiked() {
  $("liked").replaceChildren(...[...state.liked].map((id) => itemRow(id, `id ${id}`, [])));
  $("liked-empty").hidden = state.liked.size > 0;
}

async function recommend() {
  const slate = await api("POST", "v1/recommendations", { user_id: state.userId, k: SLATE_SIZE });
  const itemIds = slate.items.map((item) => item.item_id);
  await loadTitles(itemIds);
  state.slate = itemIds;
  state.outcomes = new Map();
  state.round += 1;
  const rows = slate.items.map((item) =>
    itemRow(item.item_id, `score ${item.score.toFixed(2)}`, [
      ["Click", () => act(() => click(item.item_id))],
      ["Skip", () => act(() => skip([item.item_id]))],
    ]),
  );
  $("slate").replaceChildren(...(rows.length > 0 ? rows : [note("No unseen items are left.")]));
  $("slate-status").textContent = `Slate ${state.round} (model ${slate.model_version})`;
}

function undecided() {
  return state.slate.filter((id) => !state.outcomes.has(id));
}

function markOutcomes(itemIds, outcome) {
  for (const id of itemIds) {
    state.outcomes.set(id, outcome);
    document.querySelector(`#slate li[data-item-id="${CSS.escape(id)}"]`)?.classList.add(outcome);
  }
}

async function click(itemId) {
  const rest = undecided().filter((id) => id !== itemId);
  const events = [event(itemId, "click"), ...rest.map((id) => event(id, "skip"))];
  await api("POST", "v1/events", { events });
  markOutcomes([itemId], "clicked");
  markOutcomes(rest, "skipped");
  await recommend();
}

// Skip some items of the slate. Once every item has feedback, show the next slate.
async function skip(itemIds) {
  if (itemIds.length > 0) {
    await api("POST", "v1/events", { events: itemIds.map((id) => event(id, "skip")) });
    markOutcomes(itemIds, "skipped");
  }
  if (undecided().length === 0) await recommend();
}

// Rebuild the liked list after a reload of the page. A user with no events yet may be unknown.
async function restoreLiked() {
  let history;
  try {
    history = await api("GET", `v1/users/${encodeURIComponent(state.userId)}/history`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return;
    throw error;
  }
  const liked = history.events.filter((e) => e.type === "rating" && e.value >= LIKE_RATING);
  await loadTitles(liked.map((e) => e.item_id));
  state.liked = new Set(liked.map((e) => e.item_id));
  renderLiked();
}

function startUser(userId) {
  state.userId = userId;
  sessionStorage.setItem(USER_STORAGE, userId);
  state.liked = new Set();
  state.slate = [];
  state.outcomes = new Map();
  state.round = 0;
  $("user-id").textContent = userId;
  $("slate").replaceChildren();
  $("slate-status").textContent = "";
  renderLiked();
}

function init() {
  $("api-key").value = sessionStorage.getItem(KEY_STORAGE) || "";
  $("api-key").addEventListener("input", (e) => sessionStorage.setItem(KEY_STORAGE, e.target.value));
  $("key-form").addEventListener("submit", (e) => e.preventDefault());
  const storedUser = sessionStorage.getItem(USER_STORAGE);
  startUser(storedUser || `web-${newUuid()}`);
  $("new-user").addEventListener("click", () => startUser(`web-${newUuid()}`));
  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const query = $("search").value.trim();
    if (query) act(() => search(query));
  });
  $("recommend").addEventListener("click", () => act(recommend));
  $("skip-slate").addEventListener("click", () => act(() => skip(undecided())));
  if (storedUser) act(restoreLiked);
}

document.addEventListener("DOMContentLoaded", init);

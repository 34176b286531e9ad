// The service's public API, as any other client calls it: `Authorization: Bearer <token>` on every
// call, `api-version=2018-05-01`, CloudErrors turned into ApiError. The token lives in this tab's
// sessionStorage only.

export const API_VERSION = "2018-05-01";
export const LOCAL_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000";
const TOKEN_KEY = "batchai.token";
const SUBSCRIPTION_KEY = "batchai.subscription";

export class ApiError extends Error {
  constructor(status, code, message, target) {
    super(message);
    this.status = status;
    this.code = code;
    this.target = target;
  }
}

// The service that serves this page: its URL up to "/ui/".
export function serviceBase() {
  return location.origin + location.pathname.replace(/\/ui(\/.*)?$/, "");
}

export const credentials = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  get subscription() { return sessionStorage.getItem(SUBSCRIPTION_KEY) || LOCAL_SUBSCRIPTION; },
  save(token, subscription) {
    sessionStorage.setItem(TOKEN_KEY, token);
    sessionStorage.setItem(SUBSCRIPTION_KEY, subscription || LOCAL_SUBSCRIPTION);
  },
  forget() { sessionStorage.removeItem(TOKEN_KEY); },
};

// `#token=...&subscription=...` (as `batchai ui` opens the page): keep them, then take them out of
// the address bar and the history.
export function takeTokenFromFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get("token");
  if (!token) return false;
  credentials.save(token, params.get("subscription"));
  history.replaceState(null, "", location.pathname + location.search);
  return true;
}

async function send(url, method, body) {
  const headers = { Authorization: `Bearer ${credentials.token}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const answer = await fetch(url, { method, headers, cache: "no-store",
                                    body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await answer.text();
  const json = text ? JSON.parse(text) : null;
  if (!answer.ok) {
    const error = (json && json.error) || {};
    throw new ApiError(answer.status, error.code || `HTTP ${answer.status}`,
                       error.message || answer.statusText || "The service refused the request.", error.target);
  }
  return json;
}

// `path` is a resource id or route ("/subscriptions/..."); `query` adds to api-version.
export function call(method, path, { query = {}, body } = {}) {
  const url = new URL(serviceBase() + path);
  url.searchParams.set("api-version", API_VERSION);
  for (const [name, value] of Object.entries(query)) url.searchParams.set(name, value);
  return send(url, method, body);
}

// Every item of a list (up to `limit`), following nextLink.
export async function list(path, { method = "GET", query = {}, limit = 2000 } = {}) {
  return (await listSome(path, { method, query, limit })).items;
}

// The first `limit` items of a list and whether it goes on, following nextLink (always to this
// page's origin, whatever host it names: the token goes nowhere else). `pageSize` asks for pages of
// that many (maxresults), so a long list costs one small request, not every item in it.
export async function listSome(path, { method = "GET", query = {}, limit = 2000, pageSize } = {}) {
  const first = pageSize ? { ...query, maxresults: pageSize } : query;
  let answer = await call(method, path, { query: first });
  const items = [...answer.value];
  while (answer.nextLink && items.length < limit) {
    const next = new URL(answer.nextLink);
    answer = await send(location.origin + next.pathname + next.search, method);
    items.push(...answer.value);
  }
  return { items: items.slice(0, limit), more: Boolean(answer.nextLink) || items.length > limit };
}

// The bytes of a download URL from `offset` on (signed URLs need no token): a Range request.
export async function fetchFrom(url, offset) {
  const answer = await fetch(url, { cache: "no-store", headers: offset ? { Range: `bytes=${offset}-` } : {} });
  if (answer.status === 416) return new Uint8Array();
  if (!answer.ok) throw new ApiError(answer.status, `HTTP ${answer.status}`, "The file could not be read.");
  const bytes = new Uint8Array(await answer.arrayBuffer());
  return answer.status === 206 || !offset ? bytes : bytes.slice(offset);
}

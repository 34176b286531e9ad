// Small DOM helpers: build elements, re-render a container only when its data changed (keeping the
// keyboard focus where it was), and format values for people.

export const byId = (id) => document.getElementById(id);

// h("button", { type: "button", onclick: go }, "Open") -> <button type="button">Open</button>
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  element.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false)
    .map((c) => (c instanceof Node ? c : String(c))));
  return element;
}

const signatures = new WeakMap();

// Replace the children of `container` with build()'s when `data` differs from the last render's.
// An element that had the focus is found again by its data-key and focused, so that polling never
// throws a keyboard user back to the top of the page.
export function render(container, data, build) {
  const signature = JSON.stringify(data);
  if (signatures.get(container) === signature) return false;
  signatures.set(container, signature);
  const active = document.activeElement;
  const key = active && container.contains(active) ? active.dataset.key : undefined;
  container.replaceChildren(...build());
  if (key !== undefined) {
    [...container.querySelectorAll("[data-key]")].find((e) => e.dataset.key === key)?.focus();
  }
  return true;
}

// Set text only when it changed (an aria-live region speaks at every change).
export function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

export function formatTime(iso) {
  return iso ? new Date(iso).toLocaleString() : "–";
}

export function formatDuration(ms) {
  const s = Math.max(0, Math.round(ms / 100) / 10);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${Math.round(s % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function formatBytes(n) {
  if (n === undefined || n === null) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

// The name of an ARM id's part: part(id, "resourceGroups") -> "rg"
export function part(id, segment) {
  const pieces = id.split("/");
  const at = pieces.findIndex((p) => p.toLowerCase() === segment.toLowerCase());
  return at >= 0 ? decodeURIComponent(pieces[at + 1] || "") : "";
}

// Small DOM helpers: elements are built with text nodes only (never innerHTML with data).

import { dateTime, number, t } from "./i18n.js";

const SVG_NS = "http://www.w3.org/2000/svg";

/** An HTML element with attributes (`on*` functions become listeners) and children. */
export function h(tag, attrs = {}, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

/** An SVG element, like `h`. */
export function s(tag, attrs = {}, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

function fill(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** The element with this id (it must exist). */
export function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from the page`);
  return el;
}

/** A clock time like 14:05:09 for an ISO time (empty when absent). */
export function clock(iso) {
  if (!iso) return "";
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return "";
  return dateTime(at, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/** "5 min ago"-style age of an ISO time. */
export function ago(iso, now = Date.now()) {
  const at = Date.parse(iso || "");
  if (Number.isNaN(at)) return t("ago.never");
  const seconds = Math.max(0, Math.round((now - at) / 1000));
  if (seconds < 60) return t("ago.s", { n: seconds });
  if (seconds < 3600) return t("ago.min", { n: Math.round(seconds / 60) });
  if (seconds < 86400) return t("ago.h", { n: Math.round(seconds / 3600) });
  return dateTime(at, { dateStyle: "short" });
}

/** Milliseconds of an ISO time, or -Infinity when absent or unreadable (older than anything). */
export function timeOf(iso) {
  const at = Date.parse(iso || "");
  return Number.isNaN(at) ? -Infinity : at;
}

/** An ETA as people say it: "ETA 7 min (3.1 km)". */
export function etaText(eta) {
  const minutes = Math.max(1, Math.round(eta.seconds / 60));
  return t("eta.text", { min: number(minutes), km: number(eta.distance_km, { maximumFractionDigits: 1 }) });
}

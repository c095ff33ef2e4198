// English and Russian for the operators' pages: message catalogues under /static/i18n/<lang>.json,
// the browser's language by default (a choice on the page is remembered), dates and numbers via Intl.
// Static text carries `data-i18n="key"` (its text) or `data-i18n-attr="attr:key;attr:key"`.

export const LANGUAGES = { en: "English", ru: "Русский" };
const STORE_KEY = "dispatch.language";
const listeners = new Set();
let language = "en";
let messages = {};
let fallback = {};

async function catalogue(lang) {
  const answer = await fetch(`/static/i18n/${lang}.json`);
  if (!answer.ok) throw new Error(`catalogue ${lang}: HTTP ${answer.status}`);
  return answer.json();
}

function stored() {
  try {
    return localStorage.getItem(STORE_KEY);
  } catch {
    return null;
  }
}

/** The language to start in: the one chosen on a page before, else the browser's first we speak. */
export function preferredLanguage() {
  const chosen = stored();
  if (chosen && chosen in LANGUAGES) return chosen;
  const wanted = (navigator.languages?.length ? navigator.languages : [navigator.language ?? "en"])
    .map((tag) => String(tag).slice(0, 2).toLowerCase());
  return wanted.find((lang) => lang in LANGUAGES) ?? "en";
}

export function currentLanguage() {
  return language;
}

/** Load a language and redraw: static text now, the pages' own parts through `onLanguageChange`. */
export async function setLanguage(lang, { remember = false } = {}) {
  const next = lang in LANGUAGES ? lang : "en";
  if (!Object.keys(fallback).length) fallback = await catalogue("en");
  messages = next === "en" ? fallback : await catalogue(next);
  language = next;
  document.documentElement.lang = next;
  if (remember) {
    try {
      localStorage.setItem(STORE_KEY, next);
    } catch { /* private mode: the choice lasts this page only */ }
  }
  translate(document);
  for (const listener of listeners) listener(next);
}

export function onLanguageChange(listener) {
  listeners.add(listener);
}

/** The message `key` with `{name}` placeholders filled from `vars`. */
export function t(key, vars = {}) {
  const text = messages[key] ?? fallback[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
}

/** Fill the `data-i18n` texts and `data-i18n-attr` attributes under `root`. */
export function translate(root) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of el.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":");
      el.setAttribute(attr.trim(), t(key.trim()));
    }
  }
  const title = document.querySelector("title[data-i18n]");
  if (title) document.title = title.textContent;
}

/** A number in the page's language (`options` as Intl.NumberFormat's). */
export function number(value, options = {}) {
  return new Intl.NumberFormat(language, options).format(value);
}

/** A date and time, a date, or a time of day in the page's language. */
export function dateTime(value, options = { dateStyle: "short", timeStyle: "short" }) {
  return new Intl.DateTimeFormat(language, options).format(new Date(value));
}

/** The language switch: a `<select>` filled with the languages, changing the page's in place. */
export function languageSwitch(select) {
  select.replaceChildren(...Object.entries(LANGUAGES).map(([code, name]) => {
    const option = document.createElement("option");
    option.value = code;
    option.textContent = name;
    option.lang = code;
    return option;
  }));
  select.value = language;
  select.addEventListener("change", () => setLanguage(select.value, { remember: true }));
  onLanguageChange((lang) => { select.value = lang; });
}

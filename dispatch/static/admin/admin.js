// The administrators' panel: users, organizations and their members, orders with timelines, vehicle
// types and vehicles, support tickets, geofences, API keys and webhooks — all on the public REST API,
// with the console's client, DOM helpers, map and languages. ADMIN only: anyone else who signs in is signed out again with the reason.

import { Api, ApiError } from "/static/console/api.js";
import { statusLabel } from "/static/console/board.js";
import { byId, h, s } from "/static/console/dom.js";
import { FleetMap } from "/static/console/map.js";
import { dateTime, languageSwitch, number, onLanguageChange, preferredLanguage, setLanguage, t }
  from "/static/console/i18n.js";

const PAGE_SIZE = 20;
const CATEGORIES = ["ADMIN", "MANAGER", "DRIVER", "BASE"];
const ORDER_STATUSES = ["new", "assigned", "accepted", "en_route", "arrived", "in_progress", "completed", "cancelled"];

const api = new Api((reason) => signedOut(reason));
const state = { me: null, section: "users", orgs: [], views: {} };

// --- small pieces -----------------------------------------------------------------------------------
function announce(text) {
  const region = byId("announcer");
  region.textContent = "";
  setTimeout(() => { region.textContent = text; }, 50);
}

function nameOf(user) {
  return [user.first_name, user.last_name].filter(Boolean).join(" ") || user.username;
}

/** The first message the API gave about `field` (or about the request as a whole). */
function problem(error, field = null) {
  if (!(error instanceof ApiError)) return String(error?.message ?? error);
  const about = field ? error.details?.[field] : null;
  const text = Array.isArray(about) ? about.find((m) => typeof m === "string") : null;
  return text ?? error.message;
}

/** Ask before a destructive action; resolves true when confirmed (Escape or Cancel: false). */
function confirmAction(text) {
  const dialog = byId("confirm");
  byId("confirm-text").textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
    byId("confirm-cancel").focus();
  });
}

function select(id, options, value, label) {
  return h("select", { id, "aria-label": label ?? null },
    options.map(([code, text]) => h("option", { value: code, selected: code === value }, text)));
}

function pager(view, total, reload) {
  const from = total === 0 ? 0 : view.offset + 1;
  const to = Math.min(view.offset + PAGE_SIZE, total);
  return h("div", { class: "pager" },
    h("button", { type: "button", disabled: view.offset === 0, onclick: () => {
      view.offset = Math.max(0, view.offset - PAGE_SIZE);
      reload();
    } }, t("admin.previous")),
    h("span", { class: "muted", "data-total": total }, t("admin.range", { from, to, total })),
    h("button", { type: "button", disabled: to >= total, onclick: () => {
      view.offset += PAGE_SIZE;
      reload();
    } }, t("admin.next")));
}

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== "" && value !== null && value !== undefined) {
    search.set(key, value);
  }
  return search.toString();
}

function view(name, defaults) {
  state.views[name] ??= { offset: 0, ...defaults };
  return state.views[name];
}

function categoryName(category) {
  return t(`category.${category}`);
}

// --- forms whose fields show the API's own errors -------------------------------------------------------
/** The field a conflict concerns when its details name none (409s of the unique indexes). */
const CONFLICT_FIELDS = { plate_taken: "plate", driver_taken: "driver_id", name_taken: "name",
  organization_name_taken: "name" };

/** A problem found before asking the API (a line of vertices that is not "lat,lon"), shown at its field. */
class FieldError extends Error {
  constructor(field, message) {
    super(message);
    this.field = field;
  }
}

/** A number typed in a field: empty → left out (the API says it is missing), unreadable → sent as typed. */
function num(value) {
  const text = String(value ?? "").trim().replace(",", ".");
  if (text === "") return undefined;
  const parsed = Number(text);
  return Number.isFinite(parsed) ? parsed : text;
}

/** Only what differs from `original` (an edit sends the fields the administrator changed). */
function changed(body, original) {
  return Object.fromEntries(Object.entries(body).filter(([key, value]) => (original[key] ?? null) !== (value ?? null)));
}

/**
 * A form of labelled fields, each with its error line. `fields`: `{name, label, type, value, options, hidden,
 * hint}` (type text, number, select or textarea). `onSubmit(values)` may throw: an ApiError's messages go
 * next to the fields they concern (`fieldOf(key)` turns the API's keys, e.g. "shape.radius_m", into field
 * names; a 409 names its field in `details.field` or by its code), anything else under the form.
 */
function apiForm(prefix, fields, submitLabel, onSubmit, { fieldOf = (key) => key, extra = [] } = {}) {
  const parts = new Map();
  const general = h("p", { class: "field-error form-error", id: `${prefix}-error`, role: "alert" });
  const wraps = fields.map((f) => {
    const id = `${prefix}-${f.name}`;
    const error = h("span", { class: "field-error", id: `${id}-error`, role: "alert" });
    const common = { id, name: f.name, "aria-describedby": error.id };
    let input;
    if (f.type === "select") {
      input = h("select", common, f.options.map(([code, text]) => h("option", { value: code,
        selected: code === (f.value ?? "") }, text)));
    } else if (f.type === "textarea") {
      input = h("textarea", { ...common, rows: f.rows ?? "4", cols: "26", spellcheck: "false" });
      input.value = f.value ?? "";
    } else {
      input = h("input", { ...common, type: "text", inputmode: f.type === "number" ? "decimal" : null,
        autocomplete: "off", size: f.size ?? null });
      input.value = f.value ?? "";
    }
    const wrap = h("div", { class: "field", "data-field": f.name, hidden: f.hidden ?? false },
      h("label", { for: id }, f.label), input, f.hint ? h("span", { class: "muted hint" }, f.hint) : null, error);
    parts.set(f.name, { input, error, wrap });
    return wrap;
  });
  const button = h("button", { type: "submit" }, submitLabel);

  function clear() {
    general.textContent = "";
    for (const part of parts.values()) {
      part.error.textContent = "";
      part.input.removeAttribute("aria-invalid");
    }
  }

  function place(name, text) {
    const part = parts.get(name);
    if (!part || part.wrap.hidden) return false;
    part.error.textContent = part.error.textContent ? `${part.error.textContent} ${text}` : text;
    part.input.setAttribute("aria-invalid", "true");
    return true;
  }

  function show(failure) {
    if (failure instanceof FieldError) {
      if (!place(failure.field, failure.message)) general.textContent = failure.message;
    } else if (!(failure instanceof ApiError)) {
      general.textContent = String(failure?.message ?? failure);
    } else {
      const details = failure.details ?? {};
      let placed = false;
      const about = typeof details.field === "string" ? details.field : CONFLICT_FIELDS[failure.code];
      if (about) placed = place(fieldOf(about), failure.message);
      const rest = [];
      for (const [key, messages] of Object.entries(details)) {
        if (!Array.isArray(messages)) continue;
        const text = messages.filter((m) => typeof m === "string").join(" ");
        if (!text) continue;
        if (place(fieldOf(key), text)) placed = true;
        else rest.push(key === "_schema" ? text : `${key}: ${text}`);
      }
      general.textContent = placed ? rest.join(" ") : [failure.message, ...rest].join(" ");
    }
    const first = [...parts.values()].find((part) => part.input.getAttribute("aria-invalid") === "true");
    first?.input.focus();
  }

  const form = h("form", { class: "filters api-form", id: prefix, novalidate: true, onsubmit: async (event) => {
    event.preventDefault();
    clear();
    const values = Object.fromEntries([...parts].map(([name, part]) => [name, part.input.value]));
    button.disabled = true;
    try {
      await onSubmit(values);
    } catch (failure) {
      show(failure);
    } finally {
      button.disabled = false;
    }
  } }, wraps, extra, button, general);
  form.piece = (name) => parts.get(name);
  return form;
}

/** A button that opens and closes the row after it, drawing its content each time it opens. */
function expander(label, row, draw, attrs = {}) {
  const button = h("button", { type: "button", class: "link", "aria-expanded": "false", ...attrs, onclick: async () => {
    const open = row.hidden;
    row.hidden = !open;
    button.setAttribute("aria-expanded", String(open));
    if (open) await draw(row.firstChild);
  } }, label);
  return button;
}

function orgName(id) {
  return state.orgs.find((org) => org.id === id)?.name ?? "—";
}

async function reloadOrgs() {
  state.orgs = await api.all("/organizations");
}

// --- users ------------------------------------------------------------------------------------------
async function showUsers() {
  const v = view("users", { q: "", category: "", organization: "" });
  const root = byId("section");
  const errors = { q: h("span", { class: "field-error", id: "users-q-error", role: "alert" }) };
  const form = h("form", { class: "filters", role: "search", onsubmit: (event) => {
    event.preventDefault();
    Object.assign(v, { offset: 0, q: byId("users-q").value.trim(), category: byId("users-category").value,
      organization: byId("users-org").value });
    showUsers();
  } },
  h("label", {}, t("admin.search"),
    h("input", { id: "users-q", type: "search", value: v.q, "aria-describedby": "users-q-error" }), errors.q),
  h("label", {}, t("admin.category"), select("users-category",
    [["", t("admin.any")], ...CATEGORIES.map((c) => [c, categoryName(c)])], v.category)),
  h("label", {}, t("admin.organization"), select("users-org",
    [["", t("admin.any")], ...state.orgs.map((o) => [o.id, o.name])], v.organization)),
  h("button", { type: "submit" }, t("admin.find")));
  const table = h("div", { id: "users-table" }, h("p", { class: "muted" }, t("loading")));
  root.replaceChildren(h("h2", {}, t("admin.users")), form, table);
  let page;
  try {
    page = await api.get(`/users?${query({ q: v.q, category: v.category, organization: v.organization,
      limit: PAGE_SIZE, offset: v.offset })}`);
  } catch (error) {
    errors.q.textContent = problem(error, "q");
    table.replaceChildren();
    return;
  }
  table.replaceChildren(h("table", { class: "grid" },
    h("thead", {}, h("tr", {}, [t("admin.username"), t("admin.name"), t("admin.contact"), t("admin.category"),
      t("admin.organizations"), t("admin.active"), t("admin.actions")].map((title) => h("th", { scope: "col" }, title)))),
    h("tbody", {}, page.items.map(userRow))),
  pager(v, page.total, showUsers));
}

function userRow(user) {
  const own = user.id === state.me.id;
  const error = h("span", { class: "field-error", id: `category-error-${user.id}`, role: "alert" });
  const category = select(`category-${user.id}`, CATEGORIES.map((c) => [c, categoryName(c)]), user.category,
    t("admin.categoryOf", { user: user.username }));
  category.setAttribute("aria-describedby", error.id);
  category.disabled = own;
  category.addEventListener("change", async () => {
    error.textContent = "";
    try {
      const updated = await api.request("PATCH", `/users/${user.id}`, { category: category.value });
      announce(t("admin.categorySet", { user: user.username, category: categoryName(updated.category) }));
    } catch (failure) {
      error.textContent = problem(failure, "category");
      category.value = user.category;
    }
  });
  const actionError = h("span", { class: "field-error", role: "alert" });
  return h("tr", { "data-user-id": user.id, "data-active": String(user.is_active) },
    h("td", {}, user.username),
    h("td", {}, nameOf(user)),
    h("td", {}, [user.email, user.phone].filter(Boolean).join(", ")),
    h("td", {}, category, error),
    h("td", {}, user.organizations.map((o) => o.name).join(", ") || "—"),
    h("td", {}, user.is_active ? t("admin.yes") : t("admin.no")),
    h("td", {},
      own ? h("span", { class: "muted" }, t("admin.you")) : [
        h("button", { type: "button", class: "link", onclick: () => setActive(user, !user.is_active, actionError) },
          user.is_active ? t("admin.deactivate") : t("admin.activate")),
        " ",
        h("button", { type: "button", class: "link", onclick: () => endSessions(user, actionError) },
          t("admin.endSessions")),
      ], actionError));
}

async function setActive(user, active, error) {
  if (!active && !(await confirmAction(t("admin.confirmDeactivate", { user: user.username })))) return;
  try {
    await api.request("PATCH", `/users/${user.id}`, { is_active: active });
    announce(t(active ? "admin.activated" : "admin.deactivated", { user: user.username }));
    await showUsers();
  } catch (failure) {
    error.textContent = problem(failure, "is_active");
  }
}

async function endSessions(user, error) {
  if (!(await confirmAction(t("admin.confirmEndSessions", { user: user.username })))) return;
  try {
    await api.request("DELETE", `/users/${user.id}/sessions`);
    error.textContent = "";
    announce(t("admin.sessionsEnded", { user: user.username }));
  } catch (failure) {
    error.textContent = problem(failure);
  }
}

// --- organizations and their members ------------------------------------------------------------------
async function showOrganizations() {
  const v = view("organizations", {});
  const root = byId("section");
  root.replaceChildren(h("h2", {}, t("admin.organizations")), h("p", { class: "muted" }, t("loading")));
  const page = await api.get(`/organizations?${query({ limit: PAGE_SIZE, offset: v.offset })}`);
  const create = apiForm("org-new", [
    { name: "name", label: t("admin.name") },
    { name: "description", label: t("admin.description"), size: 40 },
  ], t("admin.createOrg"), async (values) => {
    const org = await api.post("/organizations", { name: values.name, description: values.description });
    await reloadOrgs();
    await showOrganizations();
    announce(t("admin.orgCreated", { name: org.name }));
  });
  const body = h("tbody", {});
  for (const org of page.items) {
    const count = h("td", {}, number(org.member_count ?? 0));
    const members = h("tr", { class: "timeline-row", hidden: true }, h("td", { colspan: "4" }));
    const edit = h("tr", { class: "timeline-row", hidden: true }, h("td", { colspan: "4" }));
    body.append(h("tr", { "data-org-id": org.id },
      h("td", {}, org.name), h("td", {}, org.description || "—"), count,
      h("td", {}, expander(t("admin.members"), members, (cell) => showMembers(org, cell, count)), " ",
        expander(t("admin.edit"), edit, (cell) => editOrganization(org, cell),
          { "aria-label": t("admin.editLabel", { name: org.name }) }))),
    members, edit);
  }
  root.replaceChildren(h("h2", {}, t("admin.organizations")),
    h("h3", {}, t("admin.newOrg")), create,
    h("table", { class: "grid", id: "organizations" },
      h("thead", {}, h("tr", {}, [t("admin.name"), t("admin.description"), t("admin.memberCount"), ""]
        .map((title) => h("th", { scope: "col" }, title)))), body),
    pager(v, page.total, showOrganizations));
}

function editOrganization(org, cell) {
  cell.replaceChildren(apiForm(`org-edit-${org.id}`, [
    { name: "name", label: t("admin.name"), value: org.name },
    { name: "description", label: t("admin.description"), value: org.description, size: 40 },
  ], t("admin.save"), async (values) => {
    const body = changed(values, org);
    const saved = Object.keys(body).length ? await api.request("PATCH", `/organizations/${org.id}`, body) : org;
    await reloadOrgs();
    await showOrganizations();
    announce(t("admin.saved", { name: saved.name }));
  }));
}

async function showMembers(org, cell, count) {
  const users = await api.all(`/users?organization=${org.id}`);
  const ids = new Set(users.map((u) => u.id));
  const error = h("span", { class: "field-error", role: "alert" });
  const changedTo = async (answer, text) => {
    count.textContent = number(answer.member_count ?? answer.members?.length ?? 0);
    await showMembers(org, cell, count);
    announce(text);
  };
  const found = h("ul", { class: "rows found", "aria-label": t("admin.foundUsers") });
  const search = apiForm(`member-find-${org.id}`, [{ name: "q", label: t("admin.findMember") }], t("admin.find"),
    async ({ q }) => {
      const page = await api.get(`/users?${query({ q: q.trim(), limit: 10 })}`);
      const candidates = page.items.filter((u) => !ids.has(u.id));
      found.replaceChildren(...(candidates.length ? candidates.map((u) => h("li", { "data-user-id": u.id },
        `${nameOf(u)} (${u.username}) · ${categoryName(u.category)} `,
        h("button", { type: "button", class: "link", onclick: async () => {
          try {
            const answer = await api.post(`/organizations/${org.id}/members/${u.id}`);
            await changedTo(answer, t("admin.memberAdded", { user: u.username, org: org.name }));
          } catch (failure) {
            error.textContent = problem(failure);
          }
        } }, t("admin.addMember", { user: u.username }))))
        : [h("li", { class: "muted" }, t("admin.nobodyFound"))]));
    }, { fieldOf: () => "q" });
  cell.replaceChildren(
    users.length === 0 ? h("p", { class: "muted" }, t("admin.noMembers"))
      : h("ul", { class: "rows members" }, users.map((u) => h("li", { "data-member-id": u.id },
        `${nameOf(u)} (${u.username}) · ${categoryName(u.category)} `,
        h("button", { type: "button", class: "link", "aria-label": t("admin.removeMemberLabel", { user: u.username }),
          onclick: async () => {
            if (!(await confirmAction(t("admin.confirmRemoveMember", { user: u.username, org: org.name })))) return;
            try {
              const answer = await api.request("DELETE", `/organizations/${org.id}/members/${u.id}`);
              await changedTo(answer, t("admin.memberRemoved", { user: u.username, org: org.name }));
            } catch (failure) {
              error.textContent = problem(failure);
            }
          } }, t("admin.remove"))))),
    error, h("h4", {}, t("admin.addMemberTitle")), search, found);
}

// --- orders -------------------------------------------------------------------------------------------
async function showOrders() {
  const v = view("orders", { status: "", organization: "" });
  const root = byId("section");
  const form = h("form", { class: "filters", onsubmit: (event) => {
    event.preventDefault();
    Object.assign(v, { offset: 0, status: byId("orders-status").value, organization: byId("orders-org").value });
    showOrders();
  } },
  h("label", {}, t("admin.status"), select("orders-status",
    [["", t("admin.any")], ...ORDER_STATUSES.map((s) => [s, statusLabel(s)])], v.status)),
  h("label", {}, t("admin.organization"), select("orders-org",
    [["", t("admin.any")], ...state.orgs.map((o) => [o.id, o.name])], v.organization)),
  h("button", { type: "submit" }, t("admin.find")));
  const table = h("div", {}, h("p", { class: "muted" }, t("loading")));
  root.replaceChildren(h("h2", {}, t("admin.orders")), form, table);
  const page = await api.get(`/orders?${query({ status: v.status, organization: v.organization,
    limit: PAGE_SIZE, offset: v.offset })}`);
  const body = h("tbody", {});
  for (const order of page.items) {
    const timeline = h("tr", { class: "timeline-row", hidden: true }, h("td", { colspan: "5" }));
    const button = h("button", { type: "button", class: "link", "aria-expanded": "false", onclick: async () => {
      const open = timeline.hidden;
      timeline.hidden = !open;
      button.setAttribute("aria-expanded", String(open));
      if (!open) return;
      const [events, payments] = await Promise.all([
        api.get(`/orders/${order.id}/events?limit=200`).then((page) => page.items),
        api.all(`/orders/${order.id}/payments`),
      ]);
      timeline.firstChild.replaceChildren(h("ol", { class: "timeline" }, events.map((e) => h("li", {},
        h("time", { datetime: e.at }, dateTime(e.at)), " ", t(`tl.${e.type}`).startsWith("tl.") ? e.type
          : t(`tl.${e.type}`), e.reason ? ` (${e.reason})` : ""))),
      h("h4", {}, t("admin.payments")),
      payments.length === 0 ? h("p", { class: "muted payments" }, t("admin.noPayments"))
        : h("ul", { class: "rows payments" }, payments.map((p) => h("li", { "data-payment-id": p.id },
          number(p.amount, { minimumFractionDigits: 2, maximumFractionDigits: 2 }), " · ", t(`payment.${p.method}`),
          " · ", dateTime(p.created_at)))));
    } }, t("details.timeline"));
    body.append(h("tr", { "data-order-id": order.id },
      h("td", {}, dateTime(order.created_at)), h("td", {}, order.pickup.address),
      h("td", {}, statusLabel(order.status)),
      h("td", {}, number(order.price_estimate, { minimumFractionDigits: 2, maximumFractionDigits: 2 })),
      h("td", {}, button)), timeline);
  }
  table.replaceChildren(h("table", { class: "grid" },
    h("thead", {}, h("tr", {}, [t("fact.created"), t("fact.pickup"), t("admin.status"), t("fact.estimate"), ""]
      .map((title) => h("th", { scope: "col" }, title)))), body),
  pager(v, page.total, showOrders));
}

// --- vehicle types and vehicles -------------------------------------------------------------------------
const VEHICLE_STATUSES = ["offline", "available"]; // `busy` comes from assignment only

function money(value) {
  return number(value, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

function typeBody(values) {
  return { name: values.name, base_price: num(values.base_price), price_per_km: num(values.price_per_km) };
}

function vehicleBody(values) {
  return { plate: values.plate, model: values.model, color: values.color.trim() || null,
    capacity_kg: num(values.capacity_kg), organization: values.organization, driver_id: values.driver_id || null,
    status: values.status };
}

async function showFleet() {
  const v = view("fleet", {});
  const root = byId("section");
  root.replaceChildren(h("h2", {}, t("admin.fleet")), h("p", { class: "muted" }, t("loading")));
  const [types, vehicles, drivers] = await Promise.all([
    api.all("/vehicle-types"),
    api.get(`/vehicles?${query({ limit: PAGE_SIZE, offset: v.offset })}`),
    api.all("/users?category=DRIVER"),
  ]);
  const driverName = new Map(drivers.map((d) => [d.id, `${nameOf(d)} (${d.username})`]));
  const driversOf = (orgId) => [["", t("admin.noDriver")], ...drivers
    .filter((d) => d.organizations.some((o) => o.id === orgId)).map((d) => [d.id, driverName.get(d.id)])];
  const orgOptions = state.orgs.map((o) => [o.id, o.name]);

  // the vehicle form, new or edited: its drivers follow the organization chosen
  const vehicleForm = (prefix, vehicle, label, submit) => {
    const organization = vehicle?.organization ?? state.orgs[0]?.id ?? "";
    const statuses = vehicle?.status === "busy" ? ["busy", ...VEHICLE_STATUSES] : VEHICLE_STATUSES;
    const form = apiForm(prefix, [
      { name: "plate", label: t("track.plate"), value: vehicle?.plate, size: 10 },
      { name: "model", label: t("admin.model"), value: vehicle?.model },
      { name: "color", label: t("admin.color"), value: vehicle?.color ?? "", size: 10 },
      { name: "capacity_kg", label: t("admin.capacity"), type: "number", value: vehicle ? String(vehicle.capacity_kg) : "",
        size: 8 },
      { name: "organization", label: t("admin.organization"), type: "select", options: orgOptions, value: organization },
      { name: "driver_id", label: t("admin.driver"), type: "select", options: driversOf(organization),
        value: vehicle?.driver_id ?? "" },
      { name: "status", label: t("admin.status"), type: "select", value: vehicle?.status ?? "offline",
        options: statuses.map((s) => [s, t(`vstatus.${s}`)]) },
    ], label, submit);
    const orgSelect = form.piece("organization").input;
    orgSelect.addEventListener("change", () => {
      form.piece("driver_id").input.replaceChildren(...driversOf(orgSelect.value)
        .map(([code, text]) => h("option", { value: code }, text)));
    });
    return form;
  };

  const newType = apiForm("type-new", [
    { name: "name", label: t("admin.name") },
    { name: "base_price", label: t("admin.basePrice"), type: "number", size: 8 },
    { name: "price_per_km", label: t("admin.pricePerKm"), type: "number", size: 8 },
    { name: "organization", label: t("admin.priceList"), type: "select",
      options: [["", t("admin.sharedCatalogue")], ...orgOptions] },
  ], t("admin.createType"), async (values) => {
    const made = await api.post("/vehicle-types", { ...typeBody(values), organization: values.organization || null });
    await showFleet();
    announce(t("admin.typeCreated", { name: made.name }));
  });

  const typeRows = types.map((type) => {
    const edit = h("tr", { class: "timeline-row", hidden: true }, h("td", { colspan: "5" }));
    return [h("tr", { "data-type-id": type.id },
      h("td", {}, type.name), h("td", {}, type.organization ? orgName(type.organization) : t("admin.sharedCatalogue")),
      h("td", {}, money(type.base_price)), h("td", {}, money(type.price_per_km)),
      h("td", {}, expander(t("admin.edit"), edit, (cell) => cell.replaceChildren(apiForm(`type-edit-${type.id}`, [
        { name: "name", label: t("admin.name"), value: type.name },
        { name: "base_price", label: t("admin.basePrice"), type: "number", value: String(type.base_price), size: 8 },
        { name: "price_per_km", label: t("admin.pricePerKm"), type: "number", value: String(type.price_per_km),
          size: 8 },
      ], t("admin.save"), async (values) => {
        const body = changed(typeBody(values), type);
        const saved = Object.keys(body).length ? await api.request("PATCH", `/vehicle-types/${type.id}`, body) : type;
        await showFleet();
        announce(t("admin.saved", { name: saved.name }));
      })), { "aria-label": t("admin.editLabel", { name: type.name }) }))), edit];
  });

  const newVehicle = vehicleForm("vehicle-new", null, t("admin.createVehicle"), async (values) => {
    const made = await api.post("/vehicles", vehicleBody(values));
    await showFleet();
    announce(t("admin.vehicleCreated", { plate: made.plate }));
  });

  const vehicleRows = vehicles.items.map((vehicle) => {
    const edit = h("tr", { class: "timeline-row", hidden: true }, h("td", { colspan: "7" }));
    const error = h("span", { class: "field-error", role: "alert" });
    return [h("tr", { "data-vehicle-id": vehicle.id },
      h("td", {}, vehicle.plate), h("td", {}, vehicle.model, vehicle.color ? ` · ${vehicle.color}` : ""),
      h("td", {}, number(vehicle.capacity_kg)), h("td", {}, orgName(vehicle.organization)),
      h("td", {}, vehicle.driver_id ? driverName.get(vehicle.driver_id) ?? vehicle.driver_id : "—"),
      h("td", {}, t(`vstatus.${vehicle.status}`)),
      h("td", {},
        expander(t("admin.edit"), edit, (cell) => cell.replaceChildren(vehicleForm(`vehicle-edit-${vehicle.id}`,
          vehicle, t("admin.save"), async (values) => {
            const body = changed(vehicleBody(values), vehicle);
            if (Object.keys(body).length) await api.request("PATCH", `/vehicles/${vehicle.id}`, body);
            await showFleet();
            announce(t("admin.saved", { name: vehicle.plate }));
          })), { "aria-label": t("admin.editLabel", { name: vehicle.plate }) }),
        " ",
        h("button", { type: "button", class: "link", "aria-label": t("admin.deleteLabel", { name: vehicle.plate }),
          onclick: async () => {
            if (!(await confirmAction(t("admin.confirmDeleteVehicle", { plate: vehicle.plate })))) return;
            try {
              await api.request("DELETE", `/vehicles/${vehicle.id}`);
              await showFleet();
              announce(t("admin.vehicleDeleted", { plate: vehicle.plate }));
            } catch (failure) {
              error.textContent = problem(failure);
            }
          } }, t("admin.delete")), error)), edit];
  });

  root.replaceChildren(h("h2", {}, t("admin.fleet")),
    h("h3", {}, t("admin.vehicleTypes")),
    h("table", { class: "grid", id: "vehicle-types" },
      h("thead", {}, h("tr", {}, [t("admin.name"), t("admin.priceList"), t("admin.basePrice"), t("admin.pricePerKm"), ""]
        .map((title) => h("th", { scope: "col" }, title)))),
      h("tbody", {}, typeRows.flat())),
    h("h4", {}, t("admin.newType")), newType,
    h("h3", {}, t("admin.vehicles")),
    h("div", { class: "admin-map-box" }, s("svg", { id: "admin-map", class: "map admin-map", role: "group",
      "aria-label": t("map.label") })),
    h("table", { class: "grid", id: "vehicles" },
      h("thead", {}, h("tr", {}, [t("track.plate"), t("admin.model"), t("admin.capacity"), t("admin.organization"),
        t("admin.driver"), t("admin.status"), ""].map((title) => h("th", { scope: "col" }, title)))),
      h("tbody", {}, vehicleRows.flat())),
    pager(v, vehicles.total, showFleet),
    h("h4", {}, t("admin.newVehicle")), newVehicle);
  // the page's vehicles on the console's map (streets too when a tile server is set)
  const map = new FleetMap(byId("admin-map"), { onSelect: (id) => {
    byId("vehicles").querySelector(`[data-vehicle-id="${CSS.escape(id)}"]`)?.scrollIntoView({ block: "nearest" });
  } });
  for (const vehicle of vehicles.items) map.upsert(vehicle, [vehicle.plate, null]);
  map.fit();
}

// --- support tickets with internal notes ------------------------------------------------------------------
const TICKET_STATUSES = ["open", "in_progress", "resolved", "closed"];

async function showTickets() {
  const v = view("tickets", { status: "" });
  const root = byId("section");
  const form = h("form", { class: "filters", onsubmit: (event) => {
    event.preventDefault();
    Object.assign(v, { offset: 0, status: byId("tickets-status").value });
    showTickets();
  } },
  h("label", {}, t("admin.status"), select("tickets-status",
    [["", t("admin.any")], ...TICKET_STATUSES.map((s) => [s, t(`ticket.${s}`)])], v.status)),
  h("button", { type: "submit" }, t("admin.find")));
  const table = h("div", {}, h("p", { class: "muted" }, t("loading")));
  root.replaceChildren(h("h2", {}, t("admin.tickets")), form, table);
  const page = await api.get(`/support/tickets?${query({ status: v.status, limit: PAGE_SIZE, offset: v.offset })}`);
  const body = h("tbody", {});
  for (const ticket of page.items) {
    const thread = h("tr", { class: "timeline-row", hidden: true }, h("td", { colspan: "4" }));
    const button = h("button", { type: "button", class: "link", "aria-expanded": "false", onclick: async () => {
      const open = thread.hidden;
      thread.hidden = !open;
      button.setAttribute("aria-expanded", String(open));
      if (open) await showThread(ticket, thread.firstChild);
    } }, t("admin.messages"));
    const status = select(`ticket-status-${ticket.id}`, TICKET_STATUSES.map((s) => [s, t(`ticket.${s}`)]), ticket.status,
      t("admin.statusOf", { subject: ticket.subject }));
    const error = h("span", { class: "field-error", role: "alert" });
    status.addEventListener("change", async () => {
      error.textContent = "";
      try {
        await api.request("PATCH", `/support/tickets/${ticket.id}`, { status: status.value });
        announce(t("admin.ticketSet", { subject: ticket.subject, status: t(`ticket.${status.value}`) }));
      } catch (failure) {
        error.textContent = problem(failure, "status");
        status.value = ticket.status;
      }
    });
    body.append(h("tr", { "data-ticket-id": ticket.id },
      h("td", {}, ticket.subject), h("td", {}, status, error), h("td", {}, dateTime(ticket.last_message_at)),
      h("td", {}, button)), thread);
  }
  table.replaceChildren(h("table", { class: "grid" },
    h("thead", {}, h("tr", {}, [t("admin.subject"), t("admin.status"), t("admin.lastMessage"), ""]
      .map((title) => h("th", { scope: "col" }, title)))), body),
  pager(v, page.total, showTickets));
}

async function showThread(ticket, cell) {
  const messages = await api.all(`/support/tickets/${ticket.id}/messages`);
  const textId = `reply-${ticket.id}`;
  const error = h("span", { class: "field-error", id: `${textId}-error`, role: "alert" });
  const text = h("textarea", { id: textId, rows: "2", cols: "60", "aria-describedby": error.id });
  const internal = h("input", { type: "checkbox", id: `${textId}-internal`, checked: true });
  cell.replaceChildren(
    h("ol", { class: "rows" }, messages.map((m) => h("li", { "data-internal": String(m.internal) },
      h("time", { class: "muted", datetime: m.created_at }, dateTime(m.created_at)), " ",
      m.internal ? h("strong", {}, `${t("admin.internalNote")}: `) : "", m.body))),
    h("form", { class: "filters", onsubmit: async (event) => {
      event.preventDefault();
      error.textContent = "";
      try {
        await api.post(`/support/tickets/${ticket.id}/messages`, { body: text.value, internal: internal.checked });
        announce(t("admin.messageSent"));
        await showThread(ticket, cell);
      } catch (failure) {
        error.textContent = problem(failure, "body");
      }
    } },
    h("div", { class: "field" }, h("label", { for: textId }, t("admin.reply")), text, error),
    h("label", { class: "inline" }, internal, " ", t("admin.internalNote")),
    h("button", { type: "submit" }, t("admin.send"))));
}

// --- API keys ------------------------------------------------------------------------------------------------
async function showKeys() {
  const root = byId("section");
  root.replaceChildren(h("h2", {}, t("admin.keys")), h("p", { class: "muted" }, t("loading")));
  const lists = await Promise.all(state.orgs.map((org) => api.all(`/organizations/${org.id}/api-keys`)
    .then((keys) => keys.map((key) => ({ ...key, orgName: org.name })))));
  const keys = lists.flat();
  root.replaceChildren(h("h2", {}, t("admin.keys")), keys.length === 0 ? h("p", { class: "muted" }, t("admin.noKeys"))
    : h("table", { class: "grid" },
      h("thead", {}, h("tr", {}, [t("admin.organization"), t("admin.name"), t("admin.prefix"), t("admin.scopes"),
        t("admin.lastUsed"), ""].map((title) => h("th", { scope: "col" }, title)))),
      h("tbody", {}, keys.map((key) => {
        const error = h("span", { class: "field-error", role: "alert" });
        return h("tr", { "data-key-id": key.id },
          h("td", {}, key.orgName), h("td", {}, key.name), h("td", {}, h("code", {}, key.prefix)),
          h("td", {}, key.scopes.join(", ")), h("td", {}, key.last_used_at ? dateTime(key.last_used_at) : "—"),
          h("td", {}, h("button", { type: "button", class: "link", onclick: async () => {
            if (!(await confirmAction(t("admin.confirmRevokeKey", { name: key.name })))) return;
            try {
              await api.request("DELETE", `/organizations/${key.organization}/api-keys/${key.id}`);
              announce(t("admin.keyRevoked", { name: key.name }));
              await showKeys();
            } catch (failure) {
              error.textContent = problem(failure);
            }
          } }, t("inv.revoke")), error));
      }))));
}

// --- webhooks with their delivery logs -------------------------------------------------------------------------
async function showWebhooks() {
  const v = view("webhooks", {});
  const root = byId("section");
  root.replaceChildren(h("h2", {}, t("admin.webhooks")), h("p", { class: "muted" }, t("loading")));
  const page = await api.get(`/webhooks?${query({ limit: PAGE_SIZE, offset: v.offset })}`);
  const body = h("tbody", {});
  for (const hook of page.items) {
    const log = h("tr", { class: "timeline-row", hidden: true }, h("td", { colspan: "5" }));
    const button = h("button", { type: "button", class: "link", "aria-expanded": "false", onclick: async () => {
      const open = log.hidden;
      log.hidden = !open;
      button.setAttribute("aria-expanded", String(open));
      if (open) await showDeliveries(hook, log.firstChild);
    } }, t("admin.deliveries"));
    body.append(h("tr", { "data-webhook-id": hook.id },
      h("td", {}, hook.url), h("td", {}, hook.events.join(", ")), h("td", {}, hook.active ? t("admin.yes") : t("admin.no")),
      h("td", {}, number(hook.consecutive_failures)), h("td", {}, button)), log);
  }
  root.replaceChildren(h("h2", {}, t("admin.webhooks")), h("table", { class: "grid" },
    h("thead", {}, h("tr", {}, ["URL", t("admin.events"), t("admin.active"), t("admin.failures"), ""]
      .map((title) => h("th", { scope: "col" }, title)))), body),
  pager(v, page.total, showWebhooks));
}

async function showDeliveries(hook, cell) {
  const page = await api.get(`/webhooks/${hook.id}/deliveries?limit=50`);
  const error = h("span", { class: "field-error", role: "alert" });
  cell.replaceChildren(page.items.length === 0 ? h("p", { class: "muted" }, t("admin.noDeliveries"))
    : h("table", { class: "grid" },
      h("thead", {}, h("tr", {}, [t("admin.event"), t("admin.status"), t("admin.attempts"), "HTTP", ""]
        .map((title) => h("th", { scope: "col" }, title)))),
      h("tbody", {}, page.items.map((d) => h("tr", { "data-delivery-id": d.id },
        h("td", {}, d.event_type), h("td", {}, t(`delivery.${d.status}`)), h("td", {}, number(d.attempts)),
        h("td", {}, d.last_status_code ?? d.last_error ?? "—"),
        h("td", {}, h("button", { type: "button", class: "link", onclick: async () => {
          try {
            await api.post(`/webhooks/${hook.id}/deliveries/${d.id}/redeliver`);
            announce(t("admin.redelivered"));
            await showDeliveries(hook, cell);
          } catch (failure) {
            error.textContent = problem(failure);
          }
        } }, t("admin.redeliver"))))))), error);
}

// --- geofences ----------------------------------------------------------------------------------------------
const SHAPE_FIELDS = { "shape.center.lat": "lat", "shape.center.lon": "lon", "shape.center": "lat",
  "shape.radius_m": "radius_m", "shape.type": "type", shape: "type" };

/** The form field an API key of a geofence's 422 concerns ("shape.points.3.0" → the vertices). */
function geofenceField(key) {
  return key.startsWith("shape.points") ? "points" : SHAPE_FIELDS[key] ?? key;
}

/** Vertices typed one a line as "lat,lon" (or "lat lon"): `[[lat, lon], ...]`; a wrong line is a FieldError. */
function vertices(text) {
  const lines = text.split("\n").map((line) => line.trim()).filter(Boolean);
  return lines.map((line, index) => {
    const parts = line.split(/[\s,;]+/).filter(Boolean).map(Number);
    if (parts.length !== 2 || !parts.every(Number.isFinite)) {
      throw new FieldError("points", t("admin.badVertex", { n: index + 1, line }));
    }
    return parts;
  });
}

function shapeText(shape) {
  if (shape.type === "circle") {
    return t("admin.circleShape", { radius: number(shape.radius_m), lat: shape.center.lat.toFixed(5),
      lon: shape.center.lon.toFixed(5) });
  }
  return t("admin.polygonShape", { n: number(shape.points.length) });
}

async function showGeofences() {
  const v = view("geofences", { organization: "" });
  const root = byId("section");
  const filter = h("form", { class: "filters", onsubmit: (event) => {
    event.preventDefault();
    v.organization = byId("geofences-org").value;
    showGeofences();
  } },
  h("label", {}, t("admin.organization"), select("geofences-org",
    [["", t("admin.any")], ...state.orgs.map((o) => [o.id, o.name])], v.organization)),
  h("button", { type: "submit" }, t("admin.find")));
  root.replaceChildren(h("h2", {}, t("admin.geofences")), filter, h("p", { class: "muted" }, t("loading")));
  const fences = (await api.all("/geofences")).filter((f) => !v.organization || f.organization === v.organization);

  const body = h("tbody", {});
  for (const fence of fences) {
    const log = h("tr", { class: "timeline-row", hidden: true }, h("td", { colspan: "5" }));
    const error = h("span", { class: "field-error", role: "alert" });
    body.append(h("tr", { "data-geofence-id": fence.id },
      h("td", {}, fence.name), h("td", {}, orgName(fence.organization)), h("td", {}, shapeText(fence.shape)),
      h("td", {}, dateTime(fence.created_at)),
      h("td", {}, expander(t("admin.events"), log, (cell) => showCrossings(fence, cell),
        { "aria-label": t("admin.eventsOf", { name: fence.name }) }), " ",
      h("button", { type: "button", class: "link", "aria-label": t("admin.deleteLabel", { name: fence.name }),
        onclick: async () => {
          if (!(await confirmAction(t("admin.confirmDeleteGeofence", { name: fence.name })))) return;
          try {
            await api.request("DELETE", `/geofences/${fence.id}`);
            await showGeofences();
            announce(t("admin.geofenceDeleted", { name: fence.name }));
          } catch (failure) {
            error.textContent = problem(failure);
          }
        } }, t("admin.delete")), error)), log);
  }

  const form = apiForm("geofence-new", [
    { name: "organization", label: t("admin.organization"), type: "select",
      options: state.orgs.map((o) => [o.id, o.name]), value: v.organization || state.orgs[0]?.id },
    { name: "name", label: t("admin.name") },
    { name: "type", label: t("admin.shape"), type: "select", value: "circle",
      options: [["circle", t("admin.circle")], ["polygon", t("admin.polygon")]] },
    { name: "lat", label: t("admin.centreLat"), type: "number", size: 10 },
    { name: "lon", label: t("admin.centreLon"), type: "number", size: 10 },
    { name: "radius_m", label: t("admin.radius"), type: "number", size: 8 },
    { name: "points", label: t("admin.vertices"), type: "textarea", hint: t("admin.verticesHint"), hidden: true },
  ], t("admin.createGeofence"), async (values) => {
    const shape = values.type === "circle"
      ? { type: "circle", center: { lat: num(values.lat), lon: num(values.lon) }, radius_m: num(values.radius_m) }
      : { type: "polygon", points: vertices(values.points) };
    const made = await api.post("/geofences", { organization: values.organization, name: values.name, shape });
    v.organization = made.organization;
    await showGeofences();
    announce(t("admin.geofenceCreated", { name: made.name }));
  }, { fieldOf: geofenceField });
  const type = form.piece("type").input;
  type.addEventListener("change", () => {
    const circle = type.value === "circle";
    for (const name of ["lat", "lon", "radius_m"]) form.piece(name).wrap.hidden = !circle;
    form.piece("points").wrap.hidden = circle;
  });

  root.replaceChildren(h("h2", {}, t("admin.geofences")), filter,
    h("div", { class: "admin-map-box" }, s("svg", { id: "geofence-map", class: "map admin-map", role: "group",
      "aria-label": t("admin.geofenceMap") })),
    fences.length === 0 ? h("p", { class: "muted" }, t("admin.noGeofences"))
      : h("table", { class: "grid", id: "geofences" },
        h("thead", {}, h("tr", {}, [t("admin.name"), t("admin.organization"), t("admin.shape"), t("fact.created"), ""]
          .map((title) => h("th", { scope: "col" }, title)))), body),
    h("h3", {}, t("admin.newGeofence")), form);
  const map = new FleetMap(byId("geofence-map"), { onSelect: () => {} });
  map.setGeofences(fences);
}

async function showCrossings(fence, cell) {
  const [page, vehicles] = await Promise.all([
    api.get(`/geofences/${fence.id}/events?limit=50`),
    api.all(`/vehicles?organization=${fence.organization}`),
  ]);
  const plate = new Map(vehicles.map((vehicle) => [vehicle.id, vehicle.plate]));
  cell.replaceChildren(page.items.length === 0 ? h("p", { class: "muted" }, t("admin.noCrossings"))
    : h("table", { class: "grid crossings" },
      h("thead", {}, h("tr", {}, [t("admin.event"), t("track.plate"), t("admin.at"), t("admin.position")]
        .map((title) => h("th", { scope: "col" }, title)))),
      h("tbody", {}, page.items.map((e) => h("tr", { "data-event-id": e.id, "data-event": e.event },
        h("td", {}, t(`admin.crossing.${e.event}`)), h("td", {}, plate.get(e.vehicle_id) ?? e.vehicle_id),
        h("td", {}, h("time", { datetime: e.at }, dateTime(e.at, { dateStyle: "short", timeStyle: "medium" }))),
        h("td", {}, `${e.lat.toFixed(5)}, ${e.lon.toFixed(5)}`))))));
}

// --- navigation, sign-in ---------------------------------------------------------------------------------
const SECTIONS = {
  users: showUsers, organizations: showOrganizations, orders: showOrders, fleet: showFleet, tickets: showTickets,
  geofences: showGeofences, keys: showKeys, webhooks: showWebhooks,
};

async function show(section) {
  state.section = section;
  for (const button of document.querySelectorAll(".admin-nav button")) {
    if (button.dataset.section === section) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  try {
    await SECTIONS[section]();
  } catch (error) {
    byId("section").append(h("p", { class: "error", role: "alert" }, problem(error)));
  }
}

async function start() {
  byId("login-view").hidden = true;
  try {
    const me = await api.get("/users/me");
    if (me.category !== "ADMIN") {
      await api.logout();
      signedOut(t("admin.refused"));
      return;
    }
    state.me = me;
    byId("who-name").textContent = `${nameOf(me)} (${categoryName(me.category)})`;
    byId("who").hidden = false;
    state.orgs = await api.all("/organizations");
    byId("admin-view").hidden = false;
    await show(state.section);
    byId("admin-view").dataset.loaded = "true";
  } catch (error) {
    if (api.signedIn) announce(problem(error));
  }
}

function signedOut(reason = "") {
  state.me = null;
  state.views = {};
  byId("admin-view").hidden = true;
  byId("admin-view").dataset.loaded = "false";
  byId("who").hidden = true;
  byId("login-view").hidden = false;
  byId("login-error").textContent = reason;
  byId("login").focus();
}

async function onLogin(event) {
  event.preventDefault();
  const button = event.currentTarget.querySelector("button[type=submit]");
  byId("login-error").textContent = "";
  button.disabled = true;
  try {
    await api.login(byId("login").value.trim(), byId("password").value);
    byId("password").value = "";
    await start();
  } catch (failure) {
    byId("login-error").textContent = failure.status === 401 ? t("login.wrong") : problem(failure);
  } finally {
    button.disabled = false;
  }
}

async function boot() {
  await setLanguage(preferredLanguage()).catch((error) => console.warn("no message catalogue", error));
  languageSwitch(byId("language"));
  onLanguageChange(() => {
    if (state.me) {
      byId("who-name").textContent = `${nameOf(state.me)} (${categoryName(state.me.category)})`;
      show(state.section);
    }
  });
  byId("login-form").addEventListener("submit", onLogin);
  byId("logout").addEventListener("click", async () => {
    await api.logout();
    signedOut();
  });
  for (const button of document.querySelectorAll(".admin-nav button")) {
    button.addEventListener("click", () => show(button.dataset.section));
  }
  if (api.signedIn) start();
  else signedOut();
}

boot();

// The administrators' panel: users, organizations and their members, orders with timelines, vehicle
// types and vehicles — all on the public REST API, with the console's client, DOM helpers and
// languages. ADMIN only: anyone else who signs in is signed out again with the reason.

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

// --- organizations ------------------------------------------------------------------------------------
async function showOrganizations() {
  const v = view("organizations", {});
  const root = byId("section");
  root.replaceChildren(h("h2", {}, t("admin.organizations")), h("p", { class: "muted" }, t("loading")));
  const page = await api.get(`/organizations?${query({ limit: PAGE_SIZE, offset: v.offset })}`);
  const body = h("tbody", {});
  for (const org of page.items) {
    const members = h("tr", { class: "timeline-row", hidden: true }, h("td", { colspan: "4" }));
    const button = h("button", { type: "button", class: "link", "aria-expanded": "false",
      onclick: async () => {
        const open = members.hidden;
        members.hidden = !open;
        button.setAttribute("aria-expanded", String(open));
        if (!open) return;
        const users = await api.all(`/users?organization=${org.id}`);
        members.firstChild.replaceChildren(users.length ? h("ul", { class: "rows" }, users.map((u) =>
          h("li", {}, `${nameOf(u)} (${u.username}) · ${categoryName(u.category)}`))) : t("admin.noMembers"));
      } }, t("admin.members"));
    body.append(h("tr", { "data-org-id": org.id },
      h("td", {}, org.name), h("td", {}, org.description || "—"),
      h("td", {}, number(org.member_count ?? 0)), h("td", {}, button)), members);
  }
  root.replaceChildren(h("h2", {}, t("admin.organizations")), h("table", { class: "grid" },
    h("thead", {}, h("tr", {}, [t("admin.name"), t("admin.description"), t("admin.memberCount"), ""]
      .map((title) => h("th", { scope: "col" }, title)))), body),
  pager(v, page.total, showOrganizations));
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
async function showFleet() {
  const v = view("fleet", {});
  const root = byId("section");
  root.replaceChildren(h("h2", {}, t("admin.fleet")), h("p", { class: "muted" }, t("loading")));
  const [types, vehicles] = await Promise.all([
    api.all("/vehicle-types"),
    api.get(`/vehicles?${query({ limit: PAGE_SIZE, offset: v.offset })}`),
  ]);
  root.replaceChildren(h("h2", {}, t("admin.fleet")),
    h("h3", {}, t("admin.vehicleTypes")),
    h("table", { class: "grid", id: "vehicle-types" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("admin.name")))),
      h("tbody", {}, types.map((type) => h("tr", { "data-type-id": type.id }, h("td", {}, type.name))))),
    h("h3", {}, t("admin.vehicles")),
    h("div", { class: "admin-map-box" }, s("svg", { id: "admin-map", class: "map admin-map", role: "group",
      "aria-label": t("map.label") })),
    h("table", { class: "grid", id: "vehicles" },
      h("thead", {}, h("tr", {}, [t("track.plate"), t("admin.model"), t("admin.status")]
        .map((title) => h("th", { scope: "col" }, title)))),
      h("tbody", {}, vehicles.items.map((vehicle) => h("tr", { "data-vehicle-id": vehicle.id },
        h("td", {}, vehicle.plate), h("td", {}, vehicle.model), h("td", {}, t(`vstatus.${vehicle.status}`)))))),
    pager(v, vehicles.total, showFleet));
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

// --- navigation, sign-in ---------------------------------------------------------------------------------
const SECTIONS = {
  users: showUsers, organizations: showOrganizations, orders: showOrders, fleet: showFleet, tickets: showTickets,
  keys: showKeys, webhooks: showWebhooks,
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

// The side panels: who is online, waybills on the road, unread notifications.

import { ago, clock, h } from "./dom.js";

/** Drivers with their presence: online first, then by name. */
export function renderPresence(list, count, drivers) {
  const rows = [...drivers].sort((a, b) => (b.online === true) - (a.online === true) || a.name.localeCompare(b.name));
  count.textContent = `${rows.filter((d) => d.online === true).length} of ${rows.length} online`;
  list.replaceChildren(...rows.map((d) => h("li", { "data-driver-id": d.id, "data-online": String(d.online === true) },
    h("span", { class: "presence-dot", "aria-hidden": "true" }),
    h("span", { class: "name" }, d.name),
    h("span", { class: "muted" }, d.truck ? ` ${d.truck} · ` : " ",
      d.online === true ? "online" : d.online === false ? `offline, seen ${ago(d.seen)}`
        : d.seen ? `seen ${ago(d.seen)}` : "not seen"))));
}

/** Waybills whose trucks are out on the road. */
export function renderWaybills(list, count, waybills, people, truckLabel) {
  const rows = [...waybills].filter((w) => w.status === "on_route")
    .sort((a, b) => (a.departed_at ?? "").localeCompare(b.departed_at ?? ""));
  count.textContent = String(rows.length);
  list.replaceChildren(...(rows.length ? rows.map((w) => h("li", { "data-waybill-id": w.id },
    h("span", { class: "name" }, people(w.driver_id)),
    h("span", { class: "muted" }, ` ${truckLabel(w.vehicle_id)} · out since ${clock(w.departed_at) || "—"}`,
      w.order_ids.length ? ` · ${w.order_ids.length} order(s)` : "")))
    : [h("li", { class: "muted" }, "No truck is on the road with an open waybill.")]));
}

/** Unread notifications, newest first, each with a button that marks it read. */
export function renderNotifications(list, count, notifications, markRead) {
  const rows = [...notifications].sort((a, b) => b.created_at.localeCompare(a.created_at));
  count.textContent = String(rows.length);
  list.replaceChildren(...(rows.length ? rows.map((n) => h("li", { "data-notification-id": n.id },
    h("div", { class: "name" }, n.title),
    h("div", {}, n.body),
    h("div", { class: "row" }, h("time", { class: "muted", datetime: n.created_at }, ago(n.created_at)),
      h("button", { type: "button", class: "link", onclick: () => markRead(n.id),
                    "aria-label": `Mark "${n.title}" as read` }, "Mark read"))))
    : [h("li", { class: "muted" }, "Nothing unread.")]));
}

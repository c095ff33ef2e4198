// The side panels: who is online, waybills on the road, unread notifications, geofence crossings.

import { ago, clock, h } from "./dom.js";
import { t } from "./i18n.js";

/** Drivers with their presence: online first, then by name. */
export function renderPresence(list, count, drivers) {
  const rows = [...drivers].sort((a, b) => (b.online === true) - (a.online === true) || a.name.localeCompare(b.name));
  count.textContent = t("presence.count", { online: rows.filter((d) => d.online === true).length, total: rows.length });
  list.replaceChildren(...rows.map((d) => h("li", { "data-driver-id": d.id, "data-online": String(d.online === true) },
    h("span", { class: "presence-dot", "aria-hidden": "true" }),
    h("span", { class: "name" }, d.name),
    h("span", { class: "muted" }, d.truck ? ` ${d.truck} · ` : " ",
      d.online === true ? t("presence.online") : d.online === false ? t("presence.offlineSeen", { ago: ago(d.seen) })
        : d.seen ? t("presence.seen", { ago: ago(d.seen) }) : t("presence.never")))));
}

/** Waybills whose trucks are out on the road. */
export function renderWaybills(list, count, waybills, people, truckLabel) {
  const rows = [...waybills].filter((w) => w.status === "on_route")
    .sort((a, b) => (a.departed_at ?? "").localeCompare(b.departed_at ?? ""));
  count.textContent = String(rows.length);
  list.replaceChildren(...(rows.length ? rows.map((w) => h("li", { "data-waybill-id": w.id },
    h("span", { class: "name" }, people(w.driver_id)),
    h("span", { class: "muted" }, ` ${truckLabel(w.vehicle_id)} · ${t("waybill.out", { time: clock(w.departed_at) || "—" })}`,
      w.order_ids.length ? ` · ${t("waybill.orders", { n: w.order_ids.length })}` : "")))
    : [h("li", { class: "muted" }, t("waybill.none"))]));
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
                    "aria-label": t("note.markReadLabel", { title: n.title }) }, t("note.markRead")))))
    : [h("li", { class: "muted" }, t("note.none"))]));
}

/** Trucks entering and leaving geofences (`geofence` frames), newest first; `text(crossing)` words one. */
export function renderCrossings(list, crossings, text) {
  list.replaceChildren(...(crossings.length ? crossings.map((c) => h("li", {
    class: "crossing", "data-geofence-id": c.geofence_id, "data-vehicle-id": c.vehicle_id, "data-event": c.event,
  }, h("span", { class: "name" }, text(c)), h("span", { class: "muted" }, ` · ${clock(c.at)}`)))
    : [h("li", { class: "muted" }, t("crossings.none"))]));
}

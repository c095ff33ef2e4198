// The orders board: one column per status (completed and cancelled share the last one).
// Cards are buttons (focusable, Enter/Space select); arrow keys move between cards and columns.

import { ago, etaText, h } from "./dom.js";
import { t } from "./i18n.js";

export const COLUMNS = [
  ["new", ["new"]],
  ["assigned", ["assigned"]],
  ["accepted", ["accepted"]],
  ["en_route", ["en_route"]],
  ["arrived", ["arrived"]],
  ["in_progress", ["in_progress"]],
  ["done", ["completed", "cancelled"]],
];

/** An order status in the page's language. */
export function statusLabel(status) {
  const key = `ostatus.${status}`;
  const text = t(key);
  return text === key ? status : text;
}
const DONE_SHOWN = 30; // finished orders kept on the board (newest first)

function columnOf(status) {
  return COLUMNS.find(([, statuses]) => statuses.includes(status))?.[0] ?? "new";
}

export class Board {
  /** `root` holds the columns; `truckLabel(vehicleId)` names a truck; `onSelect(orderId)`. */
  constructor(root, { truckLabel, onSelect }) {
    this.root = root;
    this.truckLabel = truckLabel;
    this.onSelect = onSelect;
    this.selected = null;
    this.lists = new Map();
    this.counts = new Map();
    for (const [key] of COLUMNS) {
      const headingId = `column-${key}`;
      const count = h("span", { class: "count", "aria-label": t("board.count"), "data-i18n-attr": "aria-label:board.count" },
        "0");
      const list = h("ul", { class: "cards", "aria-labelledby": headingId });
      root.append(h("section", { class: "column", "data-column": key, "aria-labelledby": headingId },
        h("h3", { id: headingId }, h("span", { "data-i18n": `col.${key}` }, t(`col.${key}`)), " ", count), list));
      this.lists.set(key, list);
      this.counts.set(key, count);
    }
    root.addEventListener("keydown", (event) => this.keyboard(event));
  }

  /** Draw these orders (a Map of id → order). */
  render(orders) {
    const byColumn = new Map(COLUMNS.map(([key]) => [key, []]));
    for (const order of orders.values()) byColumn.get(columnOf(order.status)).push(order);
    const focused = document.activeElement?.dataset?.orderId;
    for (const [key, list] of this.lists) {
      const items = byColumn.get(key).sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
      const shown = key === "done" ? items.slice(0, DONE_SHOWN) : items;
      list.replaceChildren(...shown.map((order) => h("li", {}, this.card(order))));
      this.counts.get(key).textContent = String(items.length);
    }
    if (focused) this.root.querySelector(`[data-order-id="${CSS.escape(focused)}"]`)?.focus();
  }

  card(order) {
    const truck = order.vehicle_id ? this.truckLabel(order.vehicle_id) : null;
    return h("button", {
      type: "button", class: "order-card", "data-order-id": order.id, "data-status": order.status,
      "aria-pressed": String(order.id === this.selected),
      onclick: () => this.onSelect(order.id),
    },
    h("span", { class: "card-title" }, order.pickup.address),
    h("span", { class: "card-line" }, `${order.vehicle.make} ${order.vehicle.model} · ${order.vehicle.plate}`),
    h("span", { class: "card-line" },
      truck ? t("card.truck", { truck }) : statusLabel(order.status), " · ", ago(order.created_at)),
    order.eta ? h("span", { class: "card-line eta" }, t(`eta.to.${order.eta.target}`, { eta: etaText(order.eta) }))
      : null,
    order.status === "cancelled" ? h("span", { class: "badge cancelled" }, t("badge.cancelled")) : null);
  }

  select(orderId) {
    this.selected = orderId;
    for (const card of this.root.querySelectorAll(".order-card")) {
      card.setAttribute("aria-pressed", String(card.dataset.orderId === orderId));
    }
  }

  keyboard(event) {
    const card = event.target.closest?.(".order-card");
    if (!card || !["ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight"].includes(event.key)) return;
    event.preventDefault();
    const columns = [...this.lists.values()];
    const column = columns.indexOf(card.closest("ul"));
    const cards = [...columns[column].querySelectorAll(".order-card")];
    const index = cards.indexOf(card);
    if (event.key === "ArrowUp") cards[Math.max(0, index - 1)].focus();
    else if (event.key === "ArrowDown") cards[Math.min(cards.length - 1, index + 1)].focus();
    else {
      const step = event.key === "ArrowLeft" ? -1 : 1;
      for (let c = column + step; c >= 0 && c < columns.length; c += step) {
        const target = columns[c].querySelectorAll(".order-card");
        if (target.length) {
          target[Math.min(index, target.length - 1)].focus();
          break;
        }
      }
    }
  }
}

// The selected order: what it is, its timeline, and the assignment actions.

import { clock, etaText, h } from "./dom.js";
import { statusLabel } from "./board.js";
import { dateTime, number, t } from "./i18n.js";

function timelineWord(type) {
  const key = `tl.${type}`;
  const text = t(key);
  return text === key ? type : text;
}

export class Details {
  /**
   * `root` is the panel; `people(id)` names a user; `truckLabel(id)` names a truck;
   * `availableTrucks()` lists `{id, label}`; `assign(orderId, body)` performs an assignment.
   */
  constructor(root, { people, truckLabel, availableTrucks, assign }) {
    this.root = root;
    this.people = people;
    this.truckLabel = truckLabel;
    this.availableTrucks = availableTrucks;
    this.assign = assign;
    this.order = null;
    this.timeline = [];
    this.busy = false;
    this.message = "";
    this.clear();
  }

  clear() {
    this.order = null;
    this.root.replaceChildren(h("h2", { id: "details-title", "data-i18n": "details.title" }, t("details.title")),
      h("p", { class: "muted", "data-i18n": "details.empty" }, t("details.empty")));
  }

  /** Show an order (and its timeline when given). */
  show(order, timeline = null) {
    if (this.order?.id !== order.id) this.message = "";
    this.order = order;
    if (timeline) this.timeline = timeline;
    this.render();
  }

  note(message) {
    this.message = message;
    this.render();
  }

  render() {
    const order = this.order;
    if (!order) return;
    const truck = order.vehicle_id ? this.truckLabel(order.vehicle_id) : t("details.none");
    const driver = order.driver_id ? this.people(order.driver_id) : "—";
    const focused = this.root.contains(document.activeElement) ? document.activeElement.id : null;
    this.root.replaceChildren(...[
      h("h2", { id: "details-title" }, t("details.title"), " ",
        h("span", { class: "status-pill", "data-status": order.status, id: "details-status" },
          statusLabel(order.status))),
      h("dl", { class: "facts" },
        fact(t("fact.pickup"), order.pickup.address),
        fact(t("fact.dropoff"), order.dropoff.address),
        fact(t("fact.car"), `${order.vehicle.make} ${order.vehicle.model}, ${order.vehicle.plate}` +
                    (order.vehicle.color ? `, ${order.vehicle.color}` : "") + ` (${order.vehicle.type_name})`),
        fact(t("fact.estimate"), `${number(order.price_estimate, { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`
          + ` (${t("unit.km", { n: number(order.distance_km, { maximumFractionDigits: 1 }) })})`),
        order.eta ? fact(t("fact.eta"), t(`eta.to.${order.eta.target}`, { eta: etaText(order.eta) }) +
                             (order.eta.source === "estimate" ? t("eta.estimate") : "")) : null,
        fact(t("fact.truck"), truck),
        fact(t("fact.driver"), driver),
        order.customer ? fact(t("fact.customer"), [order.customer.name, order.customer.phone].filter(Boolean).join(", "))
          : null,
        order.external_ref ? fact(t("fact.reference"), order.external_ref) : null,
        order.notes ? fact(t("fact.notes"), order.notes) : null,
        fact(t("fact.created"), dateTime(order.created_at))),
      this.actions(order),
      h("p", { class: "action-result", role: "status", id: "assign-result" }, this.message),
      h("h3", {}, t("details.timeline")),
      h("ol", { class: "timeline", id: "timeline" }, this.timeline.map((event) => h("li", {},
        h("time", { datetime: event.at }, clock(event.at)), " ",
        timelineWord(event.type),
        event.vehicle_id ? ` — ${this.truckLabel(event.vehicle_id)}` : "",
        event.reason ? ` (${event.reason})` : "",
        h("span", { class: "muted" }, t("tl.by"),
          event.actor_type === "api_key" ? t("tl.apiKey")
            : event.actor_id === order.client_id ? t("tl.client") : this.people(event.actor_id))))),
    ].filter(Boolean));
    if (focused) document.getElementById(focused)?.focus();
  }

  actions(order) {
    if (order.status !== "new") return null;
    const trucks = this.availableTrucks();
    const select = h("select", { id: "assign-vehicle", disabled: trucks.length === 0 },
      trucks.length ? trucks.map((truck) => h("option", { value: truck.id }, truck.label))
                    : h("option", { value: "" }, t("assign.noTruck")));
    return h("form", { class: "actions", "aria-label": t("assign.form"), onsubmit: (e) => {
      e.preventDefault();
      this.run({ vehicle_id: select.value });
    } },
    h("button", { type: "button", id: "assign-nearest", disabled: this.busy,
                  onclick: () => this.run({ auto: true }) }, t("assign.nearest")),
    h("label", { for: "assign-vehicle" }, t("assign.to")),
    select,
    h("button", { type: "submit", id: "assign-to", disabled: this.busy || trucks.length === 0 }, t("assign.submit")));
  }

  async run(body) {
    const order = this.order;
    if (!order || this.busy) return;
    this.busy = true;
    this.note(t("assign.running"));
    try {
      const updated = await this.assign(order.id, body);
      this.message = t("assign.done", { truck: this.truckLabel(updated.vehicle_id) });
    } catch (error) {
      this.message = t("assign.failed", { error: error.message });
    } finally {
      this.busy = false;
      this.render();
    }
  }
}

function fact(term, value) {
  return [h("dt", {}, term), h("dd", {}, value)];
}

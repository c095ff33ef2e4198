// The selected order: what it is, its timeline, and the assignment actions.

import { clock, h } from "./dom.js";
import { STATUS_LABELS } from "./board.js";

const TIMELINE_WORDS = {
  created: "created", assigned: "assigned", accepted: "accepted", en_route: "en route", arrived: "arrived",
  in_progress: "work started", completed: "completed", cancelled: "cancelled", declined: "declined by the driver",
};

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
    this.root.replaceChildren(h("h2", { id: "details-title" }, "Order"),
      h("p", { class: "muted" }, "Select an order on the board to see its details and assign a truck."));
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
    const truck = order.vehicle_id ? this.truckLabel(order.vehicle_id) : "none yet";
    const driver = order.driver_id ? this.people(order.driver_id) : "—";
    const focused = this.root.contains(document.activeElement) ? document.activeElement.id : null;
    this.root.replaceChildren(...[
      h("h2", { id: "details-title" }, "Order ", h("span", { class: "status-pill", "data-status": order.status,
                                                                id: "details-status" },
                                                    STATUS_LABELS[order.status] ?? order.status)),
      h("dl", { class: "facts" },
        fact("Pickup", order.pickup.address),
        fact("Drop-off", order.dropoff.address),
        fact("Car", `${order.vehicle.make} ${order.vehicle.model}, ${order.vehicle.plate}` +
                    (order.vehicle.color ? `, ${order.vehicle.color}` : "") + ` (${order.vehicle.type_name})`),
        fact("Estimate", `${order.price_estimate.toFixed(2)} (${order.distance_km.toFixed(1)} km)`),
        fact("Truck", truck),
        fact("Driver", driver),
        order.customer ? fact("Customer", [order.customer.name, order.customer.phone].filter(Boolean).join(", ")) : null,
        order.external_ref ? fact("Reference", order.external_ref) : null,
        order.notes ? fact("Notes", order.notes) : null,
        fact("Created", new Date(order.created_at).toLocaleString())),
      this.actions(order),
      h("p", { class: "action-result", role: "status", id: "assign-result" }, this.message),
      h("h3", {}, "Timeline"),
      h("ol", { class: "timeline", id: "timeline" }, this.timeline.map((event) => h("li", {},
        h("time", { datetime: event.at }, clock(event.at)), " ",
        TIMELINE_WORDS[event.type] ?? event.type,
        event.vehicle_id ? ` — ${this.truckLabel(event.vehicle_id)}` : "",
        event.reason ? ` (${event.reason})` : "",
        h("span", { class: "muted" }, " by ",
          event.actor_type === "api_key" ? "an API key"
            : event.actor_id === order.client_id ? "the client" : this.people(event.actor_id))))),
    ].filter(Boolean));
    if (focused) document.getElementById(focused)?.focus();
  }

  actions(order) {
    if (order.status !== "new") return null;
    const trucks = this.availableTrucks();
    const select = h("select", { id: "assign-vehicle", disabled: trucks.length === 0 },
      trucks.length ? trucks.map((t) => h("option", { value: t.id }, t.label))
                    : h("option", { value: "" }, "no truck is available"));
    return h("form", { class: "actions", "aria-label": "Assign a truck", onsubmit: (e) => {
      e.preventDefault();
      this.run({ vehicle_id: select.value });
    } },
    h("button", { type: "button", id: "assign-nearest", disabled: this.busy,
                  onclick: () => this.run({ auto: true }) }, "Assign nearest"),
    h("label", { for: "assign-vehicle" }, "or assign to"),
    select,
    h("button", { type: "submit", id: "assign-to", disabled: this.busy || trucks.length === 0 }, "Assign"));
  }

  async run(body) {
    const order = this.order;
    if (!order || this.busy) return;
    this.busy = true;
    this.note("Assigning…");
    try {
      const updated = await this.assign(order.id, body);
      this.message = `Assigned to ${this.truckLabel(updated.vehicle_id)}.`;
    } catch (error) {
      this.message = `Not assigned: ${error.message}`;
    } finally {
      this.busy = false;
      this.render();
    }
  }
}

function fact(term, value) {
  return [h("dt", {}, term), h("dd", {}, value)];
}

// The live fleet map: an SVG drawn with a local equirectangular projection fitted to the
// vehicles (and waiting pickups) with padding. It needs no tiles, so it works with no internet; when the
// page names a tile server (`data-map-tiles` on <html>), streets.js paints streets underneath.

import { s } from "./dom.js";
import { number, t } from "./i18n.js";

const PADDING = 0.12;      // share of the view kept free around the fitted box
const MIN_SPAN_DEG = 0.01; // about 1 km: a lone truck is not zoomed in absurdly
const KM_PER_DEG = 111.32;
const LABEL_ROOM = 160;    // view units kept free on the right for the rightmost truck's label
const TRAIL_MS = 3 * 60_000; // how much of each truck's recent path is drawn behind it
const TRAIL_MAX = 600;
const FLASH_MS = 8_000;    // how long a fence stays highlighted after a truck crossed it

export class FleetMap {
  /** `svg` is the map element; `onSelect(vehicleId)` runs when a marker is activated. */
  constructor(svg, { onSelect }) {
    this.svg = svg;
    this.onSelect = onSelect;
    this.vehicles = new Map(); // id → {vehicle, label, online, el}
    this.pickups = new Map();  // order id → {lat, lon, label, selected}
    this.fences = new Map();   // geofence id → {id, name, shape, flash}
    this.view = null;          // {latC, lonC, cos, scale}
    this.width = 1000;
    this.height = 600;
    this.layers = {
      grid: s("g", { class: "map-grid", "aria-hidden": "true" }),
      fences: s("g", { class: "map-fences" }),
      trails: s("g", { class: "map-trails", "aria-hidden": "true" }),
      links: s("g", { class: "map-links", "aria-hidden": "true" }),
      pickups: s("g", { class: "map-pickups" }),
      replay: s("g", { class: "map-replay" }),
      vehicles: s("g", { class: "map-vehicles" }),
      scale: s("g", { class: "map-scale", "aria-hidden": "true" }),
    };
    svg.append(...Object.values(this.layers));
    this.streets = null;
    this.replay = null; // {points, stops, at}
    new ResizeObserver(() => this.resize()).observe(svg);
    this.resize();
    this.loadStreets();
  }

  /** Streets under the drawing when the page has a tile server; the drawing alone when not or they fail. */
  async loadStreets() {
    const { mapTiles, mapAttribution } = document.documentElement.dataset;
    if (!mapTiles) return;
    try {
      const { Streets } = await import("./streets.js");
      this.streets = new Streets(this.svg, mapTiles, mapAttribution ?? "", () => {
        this.streets = null;
      });
      this.syncStreets();
    } catch (error) {
      console.warn("streets unavailable, keeping the offline drawing", error);
      this.streets = null;
    }
  }

  syncStreets() {
    this.streets?.sync(this.view, this.width, LABEL_ROOM);
  }

  /** Add or update a vehicle: `{id, plate, status, location}` plus its label (`[plate, driver name]`). */
  upsert(vehicle, label) {
    const known = this.vehicles.get(vehicle.id);
    const entry = known ?? { online: null, el: null, trail: [], trailEl: null };
    entry.vehicle = { ...(known?.vehicle ?? {}), ...vehicle };
    entry.label = label;
    this.vehicles.set(vehicle.id, entry);
    if (entry.vehicle.location && !this.inside(entry.vehicle.location)) this.fit();
    else this.draw(entry);
  }

  remove(vehicleId) {
    const entry = this.vehicles.get(vehicleId);
    entry?.el?.remove();
    entry?.trailEl?.remove();
    this.vehicles.delete(vehicleId);
  }

  /** A new position of a vehicle; refits the view only when it leaves it. */
  move(vehicleId, location) {
    const entry = this.vehicles.get(vehicleId);
    if (!entry) return;
    const from = entry.vehicle.location;
    if (entry.trail.length === 0 && from) entry.trail.push({ lat: from.lat, lon: from.lon, at: Date.now() });
    entry.vehicle.location = location;
    entry.trail.push({ lat: location.lat, lon: location.lon, at: Date.now() });
    while (entry.trail.length > TRAIL_MAX || entry.trail[0].at < Date.now() - TRAIL_MS) entry.trail.shift();
    if (!this.inside(location)) this.fit();
    else this.draw(entry);
  }

  setOnline(vehicleId, online) {
    const entry = this.vehicles.get(vehicleId);
    if (!entry || entry.online === online) return;
    entry.online = online;
    this.draw(entry);
  }

  /** Pickups of the orders still waiting or under way: `[{id, lat, lon, label, selected}]`. */
  setPickups(pickups) {
    this.pickups = new Map(pickups.map((p) => [p.id, p]));
    if (pickups.some((p) => !this.inside(p))) this.fit();
    else this.drawPickups();
  }

  points() {
    if (this.replay) return this.replay.points;
    const points = [...this.vehicles.values()].map((e) => e.vehicle.location).filter(Boolean);
    return points.concat([...this.pickups.values()]);
  }

  /** Geofences as the API gives them (`{id, name, shape}`: circles and polygons), drawn under the trucks. */
  setGeofences(fences) {
    const flashes = new Map([...this.fences].map(([id, fence]) => [id, fence.flash]));
    this.fences = new Map(fences.map((fence) => [fence.id, { ...fence, flash: flashes.get(fence.id) ?? null }]));
    if (!this.view || this.points().length === 0) this.fit();
    else this.drawFences();
  }

  /** A truck crossed a fence (`event`: enter or exit): the fence is highlighted for a while. */
  flashGeofence(id, event) {
    const fence = this.fences.get(id);
    if (!fence) return;
    fence.flash = { event, until: Date.now() + FLASH_MS };
    this.drawFences();
    setTimeout(() => this.drawFences(), FLASH_MS + 50);
  }

  /** The corners of every fence: what the view fits to when nothing else is on the map. */
  fencePoints() {
    const corners = [];
    for (const { shape } of this.fences.values()) {
      if (shape.type === "circle") {
        const dLat = shape.radius_m / 1000 / KM_PER_DEG;
        const dLon = dLat / Math.max(0.01, Math.cos((shape.center.lat * Math.PI) / 180));
        corners.push({ lat: shape.center.lat - dLat, lon: shape.center.lon - dLon },
          { lat: shape.center.lat + dLat, lon: shape.center.lon + dLon });
      } else {
        corners.push(...shape.points.map(([lat, lon]) => ({ lat, lon })));
      }
    }
    return corners;
  }

  drawFences() {
    const layer = this.layers.fences;
    layer.replaceChildren();
    if (!this.view) return;
    const now = Date.now();
    for (const fence of this.fences.values()) {
      const { shape } = fence;
      const crossing = fence.flash && fence.flash.until > now ? fence.flash.event : null;
      let outline;
      let top;
      if (shape.type === "circle") {
        const [cx, cy] = this.project(shape.center);
        const r = (shape.radius_m / 1000 / KM_PER_DEG) * this.view.scale;
        outline = s("circle", { class: "fence-shape", cx: cx.toFixed(1), cy: cy.toFixed(1),
          r: Math.max(r, 2).toFixed(1) });
        top = [cx, cy - r];
      } else {
        const xy = shape.points.map(([lat, lon]) => this.project({ lat, lon }));
        outline = s("polygon", { class: "fence-shape",
          points: xy.map((p) => p.map((v) => v.toFixed(1)).join(",")).join(" ") });
        top = xy.reduce((best, p) => (p[1] < best[1] ? p : best));
      }
      const label = t("map.geofence", { name: fence.name });
      layer.append(s("g", { class: "geofence", "data-geofence-id": fence.id, "data-crossing": crossing,
        role: "img", "aria-label": label },
      s("title", {}, label), outline,
      s("text", { x: top[0].toFixed(1), y: (top[1] - 5).toFixed(1), "text-anchor": "middle" }, fence.name)));
    }
  }

  /** A stored route (`[{lat, lon, ts}]` in time order) with its stops (`[{lat, lon, from, minutes}]`). */
  showReplay(points, stops) {
    this.replay = { points, stops, at: 0 };
    this.fit();
  }

  /** Move the replay's marker to the point with this index. */
  replayAt(index) {
    if (!this.replay) return;
    this.replay.at = Math.max(0, Math.min(index, this.replay.points.length - 1));
    this.drawReplay();
  }

  clearReplay() {
    this.replay = null;
    this.layers.replay.replaceChildren();
    this.fit();
  }

  drawReplay() {
    const layer = this.layers.replay;
    layer.replaceChildren();
    if (!this.replay || !this.view) return;
    const { points, stops, at } = this.replay;
    const xy = (p) => this.project(p).map((v) => v.toFixed(1)).join(",");
    layer.append(s("polyline", { class: "replay-path", points: points.map(xy).join(" ") }));
    for (const stop of stops) {
      const [x, y] = this.project(stop);
      layer.append(s("g", { class: "replay-stop", transform: `translate(${x.toFixed(1)} ${y.toFixed(1)})`,
        "data-minutes": stop.minutes },
      s("title", {}, stop.label), s("circle", { r: "11" }), s("text", { y: "4" }, "P")));
    }
    const point = points[at];
    const [x, y] = this.project(point);
    layer.append(s("circle", { class: "replay-marker", r: "9", cx: x.toFixed(1), cy: y.toFixed(1),
      "data-index": at, "data-lat": point.lat, "data-lon": point.lon }));
  }

  /** Fit the projection to everything on the map. */
  fit() {
    let points = this.points();
    if (points.length === 0) points = this.fencePoints();
    if (points.length === 0) {
      this.view = null;
      this.redraw();
      return;
    }
    const lats = points.map((p) => p.lat);
    const lons = points.map((p) => p.lon);
    const latC = (Math.min(...lats) + Math.max(...lats)) / 2;
    const lonC = (Math.min(...lons) + Math.max(...lons)) / 2;
    const cos = Math.cos((latC * Math.PI) / 180);
    const spanY = Math.max(Math.max(...lats) - Math.min(...lats), MIN_SPAN_DEG);
    const spanX = Math.max((Math.max(...lons) - Math.min(...lons)) * cos, MIN_SPAN_DEG);
    const usable = 1 - 2 * PADDING;
    const scale = Math.min((this.width * usable - LABEL_ROOM) / spanX, (this.height * usable) / spanY);
    this.view = { latC, lonC, cos, scale };
    this.redraw();
  }

  project({ lat, lon }) {
    const { latC, lonC, cos, scale } = this.view;
    return [(this.width - LABEL_ROOM) / 2 + (lon - lonC) * cos * scale, this.height / 2 - (lat - latC) * scale];
  }

  inside(point) {
    if (!point || !this.view) return !point;
    const [x, y] = this.project(point);
    const marginX = this.width * PADDING * 0.5;
    const marginY = this.height * PADDING * 0.5;
    return x >= marginX && x <= this.width - marginX - LABEL_ROOM / 2 && y >= marginY && y <= this.height - marginY;
  }

  resize() {
    const box = this.svg.getBoundingClientRect();
    if (box.width < 10 || box.height < 10) return;
    this.width = 1000;
    this.height = Math.round((1000 * box.height) / box.width);
    this.svg.setAttribute("viewBox", `0 0 ${this.width} ${this.height}`);
    this.fit();
  }

  redraw() {
    this.drawGrid();
    this.syncStreets();
    this.drawFences();
    this.drawReplay();
    for (const entry of this.vehicles.values()) this.draw(entry);
    this.drawPickups();
  }

  draw(entry) {
    const { vehicle } = entry;
    if (!vehicle.location || !this.view) {
      entry.el?.remove();
      entry.el = null;
      entry.trailEl?.remove();
      entry.trailEl = null;
      if (vehicle.location && !this.view) this.fit();
      return;
    }
    if (!entry.el) entry.el = this.marker(vehicle.id);
    this.drawTrail(entry);
    const el = entry.el;
    const [x, y] = this.project(vehicle.location);
    el.setAttribute("transform", `translate(${x.toFixed(1)} ${y.toFixed(1)})`);
    el.dataset.lat = vehicle.location.lat;
    el.dataset.lon = vehicle.location.lon;
    el.dataset.status = vehicle.status;
    el.dataset.online = entry.online === null ? "unknown" : String(entry.online);
    const heading = vehicle.location.heading;
    const arrow = el.querySelector(".heading");
    arrow.setAttribute("transform", `rotate(${Number.isFinite(heading) ? heading : 0})`);
    arrow.toggleAttribute("hidden", !Number.isFinite(heading));
    const [plate, driver] = entry.label;
    el.querySelector(".plate").textContent = plate;
    el.querySelector(".driver").textContent = driver ?? "";
    const name = driver ? `${plate} (${driver})` : plate;
    const presence = entry.online === null ? "" : t(entry.online ? "map.driverOnline" : "map.driverOffline");
    const status = vehicle.status ? t(`vstatus.${vehicle.status}`) : "";
    el.setAttribute("aria-label", `${name}: ${status}${presence}`);
    el.querySelector("title").textContent = `${name} — ${status}${presence}`;
  }

  drawTrail(entry) {
    if (entry.trail.length < 2) return;
    if (!entry.trailEl) {
      entry.trailEl = s("polyline", { class: "trail" });
      this.layers.trails.append(entry.trailEl);
    }
    entry.trailEl.dataset.status = entry.vehicle.status;
    entry.trailEl.setAttribute("points", entry.trail.map((p) => this.project(p).map((v) => v.toFixed(1)).join(","))
      .join(" "));
  }

  marker(vehicleId) {
    const el = s("g", {
      class: "vehicle", tabindex: "0", role: "button", "data-vehicle-id": vehicleId,
      onclick: () => this.onSelect(vehicleId),
      onkeydown: (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          this.onSelect(vehicleId);
        }
      },
    },
    s("title"),
    s("path", { class: "heading", d: "M0 -17 L5 -9 L-5 -9 Z" }),
    s("circle", { class: "dot", r: "9" }),
    s("text", { x: "20", y: "-1" },
      s("tspan", { class: "plate" }), s("tspan", { class: "driver", x: "20", dy: "13" })));
    this.layers.vehicles.append(el);
    return el;
  }

  drawPickups() {
    const layer = this.layers.pickups;
    layer.replaceChildren();
    this.layers.links.replaceChildren();
    if (!this.view) return;
    for (const pickup of this.pickups.values()) {
      const [x, y] = this.project(pickup);
      layer.append(s("g", {
        class: `pickup${pickup.selected ? " selected" : ""}`, transform: `translate(${x.toFixed(1)} ${y.toFixed(1)})`,
        "data-order-id": pickup.id,
      }, s("title", {}, pickup.label), s("rect", { x: "-6", y: "-6", width: "12", height: "12" })));
      const truck = pickup.selected && pickup.vehicleId ? this.vehicles.get(pickup.vehicleId) : null;
      if (truck?.vehicle.location) {
        const [vx, vy] = this.project(truck.vehicle.location);
        this.layers.links.append(s("line", { x1: vx, y1: vy, x2: x, y2: y }));
      }
    }
  }

  drawGrid() {
    const { grid, scale } = this.layers;
    grid.replaceChildren();
    scale.replaceChildren();
    if (!this.view) return;
    // a scale bar of a round number of km, about a fifth of the width
    const kmPerUnit = KM_PER_DEG / this.view.scale;
    const wanted = (this.width / 5) * kmPerUnit;
    const step = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000].find((km) => km >= wanted) ?? wanted;
    const length = step / kmPerUnit;
    const x0 = 20;
    const y0 = this.height - 20;
    scale.append(s("line", { x1: x0, y1: y0, x2: x0 + length, y2: y0 }),
                 s("text", { x: x0, y: y0 - 6 }, step < 1 ? t("unit.m", { n: number(step * 1000) })
                   : t("unit.km", { n: number(step) })));
    for (let x = (this.width / 2) % length; x < this.width; x += length) {
      grid.append(s("line", { x1: x, y1: 0, x2: x, y2: this.height }));
    }
    for (let y = (this.height / 2) % length; y < this.height; y += length) {
      grid.append(s("line", { x1: 0, y1: y, x2: this.width, y2: y }));
    }
  }
}

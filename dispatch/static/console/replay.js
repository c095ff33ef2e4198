// Route replay: a truck's stored path for a period (`GET /vehicles/{id}/track`) drawn on the map,
// a time slider moving a marker along it, and the stops longer than five minutes marked.

import { byId, h } from "./dom.js";
import { dateTime, number, t } from "./i18n.js";

const STOP_MINUTES = 5;   // a stay at least this long is a stop
const STOP_RADIUS_M = 50; // points this close to where the stay began are the same place
const DEFAULT_HOURS = 2;

function metres(a, b) {
  const rad = Math.PI / 180;
  const x = (b.lon - a.lon) * rad * Math.cos(((a.lat + b.lat) / 2) * rad);
  const y = (b.lat - a.lat) * rad;
  return Math.hypot(x, y) * 6_371_000;
}

/** Stays of at least STOP_MINUTES within STOP_RADIUS_M of where they began: `[{lat, lon, from, to, minutes}]`. */
export function stopsOf(points) {
  const stops = [];
  let i = 0;
  while (i < points.length) {
    let j = i;
    while (j + 1 < points.length && metres(points[i], points[j + 1]) <= STOP_RADIUS_M) j += 1;
    const minutes = (Date.parse(points[j].ts) - Date.parse(points[i].ts)) / 60_000;
    if (minutes >= STOP_MINUTES) {
      stops.push({ lat: points[i].lat, lon: points[i].lon, from: points[i].ts, to: points[j].ts,
        minutes: Math.round(minutes) });
    }
    i = j + 1;
  }
  return stops;
}

/** A `datetime-local` value for a time (the browser's zone). */
function localValue(date) {
  const shifted = new Date(date.getTime() - date.getTimezoneOffset() * 60_000);
  return shifted.toISOString().slice(0, 16);
}

export class Replay {
  /** `map` is the FleetMap; `api` the REST client; `vehicles()` lists `{id, label}` to choose from. */
  constructor(map, api, vehicles) {
    this.map = map;
    this.api = api;
    this.vehicles = vehicles;
    this.track = null;
    this.form = byId("replay-form");
    this.slider = byId("replay-slider");
    const now = new Date();
    byId("replay-to").value = localValue(now);
    byId("replay-from").value = localValue(new Date(now.getTime() - DEFAULT_HOURS * 3600_000));
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.load();
    });
    this.slider.addEventListener("input", () => this.move(Number(this.slider.value)));
    byId("replay-close").addEventListener("click", () => this.close());
  }

  /** Refresh the trucks to choose from, keeping the choice. */
  fill() {
    const select = byId("replay-vehicle");
    const chosen = select.value;
    select.replaceChildren(...this.vehicles().map((v) => h("option", { value: v.id }, v.label)));
    if (chosen) select.value = chosen;
  }

  async load() {
    const id = byId("replay-vehicle").value;
    const from = new Date(byId("replay-from").value);
    const to = new Date(byId("replay-to").value);
    const result = byId("replay-result");
    if (!id || Number.isNaN(from.getTime()) || Number.isNaN(to.getTime())) return;
    try {
      const query = new URLSearchParams({ from: from.toISOString(), to: to.toISOString() });
      const track = await this.api.get(`/vehicles/${encodeURIComponent(id)}/track?${query}`);
      if (track.points.length === 0) {
        this.close();
        result.textContent = t("replay.none");
        return;
      }
      this.track = { ...track, stops: stopsOf(track.points) };
      this.slider.max = String(track.points.length - 1);
      this.slider.value = "0";
      byId("replay-player").hidden = false;
      this.map.showReplay(track.points, this.track.stops.map((stop) => ({ ...stop, label: this.stopText(stop) })));
      this.render();
      this.move(0);
    } catch (error) {
      result.textContent = t("replay.failed", { error: error.message });
    }
  }

  stopText(stop) {
    return t("replay.stop", { minutes: number(stop.minutes), time: dateTime(stop.from, { timeStyle: "short" }) });
  }

  /** The texts that depend on the language (after a switch too). */
  render() {
    if (!this.track) return;
    byId("replay-result").textContent = t("replay.summary", {
      points: number(this.track.points.length), km: number(this.track.distance_km, { maximumFractionDigits: 1 }),
    });
    byId("replay-stops").replaceChildren(...this.track.stops.map((stop) => h("li", { "data-minutes": stop.minutes },
      this.stopText(stop))));
    this.move(Number(this.slider.value));
  }

  move(index) {
    if (!this.track) return;
    const point = this.track.points[index];
    byId("replay-time").textContent = dateTime(point.ts, { dateStyle: "short", timeStyle: "medium" });
    this.map.replayAt(index);
  }

  close() {
    this.track = null;
    byId("replay-player").hidden = true;
    byId("replay-result").textContent = "";
    byId("replay-stops").replaceChildren();
    this.map.clearReplay();
  }
}

// The manager console: signs in, loads the fleet, orders, waybills and notifications over REST,
// then keeps them live from `/ws/console` frames.

import { Api, ApiError } from "./api.js";
import { Board, statusLabel } from "./board.js";
import { Details } from "./details.js";
import { byId, timeOf } from "./dom.js";
import { languageSwitch, number, onLanguageChange, preferredLanguage, setLanguage, t } from "./i18n.js";
import { Live } from "./live.js";
import { Invitations } from "./invitations.js";
import { FleetMap } from "./map.js";
import { renderCrossings, renderNotifications, renderPresence, renderWaybills } from "./panels.js";
import { Replay } from "./replay.js";

const ACTIVE = ["new", "assigned", "accepted", "en_route", "arrived", "in_progress"];
const FINISHED_LOADED = 30;
const CONSOLE_ROLES = ["MANAGER", "ADMIN"];
const CROSSINGS_SHOWN = 20; // geofence enters/exits kept in the side panel, newest first

const state = {
  me: null,
  people: new Map(),        // user id → display name
  vehicles: new Map(),      // vehicle id → vehicle (API form)
  orders: new Map(),
  waybills: new Map(),
  notifications: new Map(), // unread only
  presence: new Map(),      // driver id → {online, seen}
  orgIds: [],               // the organizations whose fleets the page follows
  geofences: new Map(),     // geofence id → geofence (API form)
  crossings: [],            // `geofence` frames, newest first
  selected: null,
};
let live = null;
let map = null;
let board = null;
let details = null;
let invitations = null;
let replay = null;
let connectionState = ["stopped", {}];
const fetchingVehicles = new Set();
const staleVehicles = new Set();

const api = new Api((reason) => signedOut(reason));

// --- names ---------------------------------------------------------------------------------
function nameOf(user) {
  const full = [user.first_name, user.last_name].filter(Boolean).join(" ");
  return full || user.username;
}

function person(id) {
  if (!id) return "—";
  if (state.me && id === state.me.id) return t("you");
  return state.people.get(id) ?? t("user.unknown", { id: id.slice(-6) });
}

function truckLabel(id) {
  const vehicle = state.vehicles.get(id);
  return vehicle ? vehicle.plate : t("truck.unknown", { id: String(id).slice(-6) });
}

function markerLabel(vehicle) {
  return vehicle.driver_id ? `${vehicle.plate} · ${person(vehicle.driver_id)}` : vehicle.plate;
}

function mapLabel(vehicle) {
  return [vehicle.plate, vehicle.driver_id ? person(vehicle.driver_id) : null];
}

function distanceKm(a, b) {
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLon = (b.lon - a.lon) * rad;
  const x = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
  return 12742 * Math.asin(Math.sqrt(x));
}

function availableTrucks() {
  const order = state.orders.get(state.selected);
  return [...state.vehicles.values()]
    .filter((v) => v.status === "available" && (!order?.organization || v.organization === order.organization))
    .map((v) => ({ v, km: v.location && order ? distanceKm(v.location, order.pickup) : Infinity }))
    .sort((a, b) => a.km - b.km)
    .map(({ v, km }) => ({
      id: v.id,
      label: markerLabel(v) + (Number.isFinite(km) ? ` — ${t("unit.km", { n: number(km, { minimumFractionDigits: 1,
        maximumFractionDigits: 1 }) })}` : ""),
    }));
}

// --- status line -------------------------------------------------------------------------------
function announce(text) {
  const region = byId("announcer");
  region.textContent = "";
  // a new text node each time so screen readers read repeated messages too
  setTimeout(() => { region.textContent = text; }, 50);
}

function connection(stateName, detail = {}) {
  const el = byId("connection");
  connectionState = [stateName, detail];
  const texts = {
    connecting: t("conn.connecting"),
    live: t("conn.live"),
    reconnecting: detail.attempt ? t("conn.attempt", { n: detail.attempt }) : t("conn.reconnecting"),
    stopped: detail.signedOut ? t("conn.signedOut") : t("conn.stopped"),
    forbidden: t("conn.forbidden"),
  };
  el.dataset.state = stateName;
  el.textContent = texts[stateName] ?? stateName;
  document.body.dataset.connection = stateName;
}

// --- merging what REST and frames tell -----------------------------------------------------------
function keepVehicle(vehicle) {
  const known = state.vehicles.get(vehicle.id);
  const merged = { ...vehicle };
  if (known?.location && timeOf(known.location.ts) > timeOf(vehicle.location?.ts)) merged.location = known.location;
  if (known && timeOf(known.updated_at) > timeOf(vehicle.updated_at)) {
    Object.assign(merged, { ...known, location: merged.location });
  }
  state.vehicles.set(vehicle.id, merged);
  map.upsert(merged, mapLabel(merged));
  if (merged.driver_id && !state.presence.has(merged.driver_id) && merged.location?.ts) {
    state.presence.set(merged.driver_id, { online: null, seen: merged.location.ts });
  }
  // presence may have been heard of before the truck itself was loaded
  const presence = state.presence.get(merged.driver_id);
  if (presence && presence.online !== null) map.setOnline(merged.id, presence.online);
}

function keepOrder(order) {
  const known = state.orders.get(order.id);
  if (known && timeOf(known.updated_at) > timeOf(order.updated_at)) return false;
  state.orders.set(order.id, order);
  return true;
}

async function refreshVehicle(id) {
  if (!id) return;
  if (fetchingVehicles.has(id)) {
    staleVehicles.add(id); // the answer in flight may predate what just happened: ask again after it
    return;
  }
  fetchingVehicles.add(id);
  try {
    keepVehicle(await api.get(`/vehicles/${id}`));
    renderAll();
  } catch (error) {
    if (error instanceof ApiError && error.status === 404 && state.vehicles.has(id)) {
      state.vehicles.delete(id);
      map.remove(id);
    }
  } finally {
    fetchingVehicles.delete(id);
    if (staleVehicles.delete(id)) refreshVehicle(id);
  }
}

// --- frames --------------------------------------------------------------------------------------
function onFrame(frame) {
  switch (frame.type) {
    case "location": return onLocation(frame);
    case "presence": return onPresence(frame);
    case "order": return onOrder(frame);
    case "waybill": return onWaybill(frame);
    case "notification": return onNotification(frame);
    case "eta": return onEta(frame);
    case "arriving": return onArriving(frame);
    case "geofence": return onGeofence(frame);
    default: return undefined;
  }
}

function onLocation(frame) {
  const vehicle = state.vehicles.get(frame.vehicle_id);
  if (!vehicle) {
    refreshVehicle(frame.vehicle_id);
    return;
  }
  const point = { lat: frame.lat, lon: frame.lon, ts: frame.ts, speed: frame.speed, heading: frame.heading };
  if (vehicle.location && timeOf(vehicle.location.ts) > timeOf(frame.ts)) return; // a replayed older point
  vehicle.location = point;
  map.move(vehicle.id, point);
  if (frame.driver_id) {
    const was = state.presence.get(frame.driver_id);
    state.presence.set(frame.driver_id, { online: true, seen: frame.ts });
    map.setOnline(vehicle.id, true);
    if (was?.online !== true) drawPresence();
  }
}

function onPresence(frame) {
  state.presence.set(frame.driver_id, { online: frame.online, seen: frame.at });
  if (frame.vehicle_id) map.setOnline(frame.vehicle_id, frame.online);
  drawPresence();
  announce(t(frame.online ? "presence.announce.online" : "presence.announce.offline", { name: person(frame.driver_id) }));
}

function onOrder(frame) {
  const previous = state.orders.get(frame.order.id);
  if (!keepOrder(frame.order)) return;
  const order = frame.order;
  for (const id of new Set([previous?.vehicle_id, order.vehicle_id])) {
    if (id && (frame.from !== frame.to || frame.event === "assigned")) refreshVehicle(id);
  }
  if (frame.event === "created") announce(t("order.announce.new", { address: order.pickup.address }));
  else announce(t("order.announce.status", { address: order.pickup.address, status: statusLabel(order.status) }));
  renderAll();
  if (state.selected === order.id) loadTimeline(order.id);
}

function onEta(frame) {
  const order = state.orders.get(frame.order_id);
  if (!order) return;
  const { target, seconds, distance_km, computed_at, source } = frame;
  if (order.eta && timeOf(order.eta.computed_at) > timeOf(computed_at)) return;
  order.eta = { target, seconds, distance_km, computed_at, source };
  renderAll();
}

function onArriving(frame) {
  keepOrder(frame.order);
  const place = frame.target === "dropoff" ? frame.order.dropoff : frame.order.pickup;
  announce(t("announce.arriving", { target: t(`target.${frame.target}`), address: place.address }));
  renderAll();
  if (state.selected === frame.order.id) loadTimeline(frame.order.id);
}

function onGeofence(frame) {
  const key = (c) => `${c.geofence_id}/${c.vehicle_id}/${c.event}/${c.at}`;
  if (state.crossings.some((c) => key(c) === key(frame))) return; // replayed after a reconnect
  state.crossings.unshift(frame);
  state.crossings.sort((a, b) => timeOf(b.at) - timeOf(a.at));
  state.crossings.length = Math.min(state.crossings.length, CROSSINGS_SHOWN);
  if (!state.geofences.has(frame.geofence_id)) loadGeofences().catch(() => {}); // made after the page loaded
  map.flashGeofence(frame.geofence_id, frame.event);
  drawCrossings();
  announce(crossingText(frame));
}

function fenceName(id) {
  return state.geofences.get(id)?.name ?? t("geo.unknown");
}

function crossingText(crossing) {
  return t(`geo.${crossing.event}`, { truck: truckLabel(crossing.vehicle_id), fence: fenceName(crossing.geofence_id) });
}

function onWaybill(frame) {
  const waybill = frame.waybill;
  const known = state.waybills.get(waybill.id);
  if (known && timeOf(known.updated_at) > timeOf(waybill.updated_at)) return;
  state.waybills.set(waybill.id, waybill);
  drawWaybills();
}

function onNotification(frame) {
  const note = frame.notification;
  if (note.read || state.notifications.has(note.id)) return;
  state.notifications.set(note.id, note);
  drawNotifications();
  announce(note.title);
  if (note.event === "member_joined") invitations.reload().catch(() => {}); // the accepted one left the list
}

// --- drawing --------------------------------------------------------------------------------------
function renderAll() {
  board.render(state.orders);
  map.setPickups([...state.orders.values()].filter((o) => ACTIVE.includes(o.status)).map((o) => ({
    id: o.id, lat: o.pickup.lat, lon: o.pickup.lon,
    label: t("pickup.label", { address: o.pickup.address, status: statusLabel(o.status) }),
    selected: o.id === state.selected, vehicleId: o.vehicle_id,
  })));
  const selected = state.orders.get(state.selected);
  if (selected) details.show(selected);
  drawPresence();
  drawWaybills();
  drawNotifications();
  drawCrossings();
  replay?.fill();
}

function drawCrossings() {
  renderCrossings(byId("crossing-list"), state.crossings, crossingText);
  byId("geofence-count").textContent = t("crossings.count", { n: number(state.geofences.size) });
}

function drawPresence() {
  const drivers = new Map();
  for (const vehicle of state.vehicles.values()) {
    if (vehicle.driver_id) drivers.set(vehicle.driver_id, vehicle.plate);
  }
  for (const id of state.presence.keys()) if (!drivers.has(id)) drivers.set(id, null);
  renderPresence(byId("presence-list"), byId("presence-count"), [...drivers].map(([id, truck]) => ({
    id, truck, name: person(id), ...(state.presence.get(id) ?? { online: null, seen: null }),
  })));
}

function drawWaybills() {
  renderWaybills(byId("waybill-list"), byId("waybill-count"), state.waybills.values(), person, truckLabel);
}

function drawNotifications() {
  renderNotifications(byId("notification-list"), byId("notification-count"), state.notifications.values(), markRead);
  byId("read-all").disabled = state.notifications.size === 0;
}

// --- actions ------------------------------------------------------------------------------------------
async function selectOrder(id) {
  state.selected = id;
  board.select(id);
  renderAll();
  byId("details").scrollIntoView?.({ block: "nearest" });
  await loadTimeline(id);
}

async function loadTimeline(id) {
  try {
    const page = await api.get(`/orders/${id}/events?limit=200`);
    const order = state.orders.get(id);
    if (state.selected === id && order) details.show(order, page.items);
  } catch (error) {
    details.note(t("timeline.failed", { error: error.message }));
  }
}

function selectVehicle(id) {
  const vehicle = state.vehicles.get(id);
  if (!vehicle) return;
  if (vehicle.current_order && state.orders.has(vehicle.current_order)) selectOrder(vehicle.current_order);
  else announce(`${markerLabel(vehicle)}: ${t(`vstatus.${vehicle.status}`)}`);
}

async function assign(orderId, body) {
  const order = await api.post(`/orders/${orderId}/assign`, body);
  keepOrder(order);
  refreshVehicle(order.vehicle_id);
  announce(t("assign.announce", { truck: truckLabel(order.vehicle_id) }));
  renderAll();
  loadTimeline(orderId);
  return order;
}

async function markRead(id) {
  try {
    await api.post(`/notifications/${id}/read`);
    state.notifications.delete(id);
    drawNotifications();
  } catch (error) {
    announce(t("read.failed", { error: error.message }));
  }
}

async function markAllRead() {
  try {
    await api.post("/notifications/read-all");
    state.notifications.clear();
    drawNotifications();
  } catch (error) {
    announce(t("readAll.failed", { error: error.message }));
  }
}

// --- loading -------------------------------------------------------------------------------------------
async function organizations(me) {
  const ids = me.organizations.map((org) => org.id);
  if (ids.length || me.category !== "ADMIN") return ids;
  return (await api.all("/organizations")).map((org) => org.id);
}

async function loadPeople(orgIds) {
  const lists = await Promise.all(orgIds.map((id) => api.all(`/users?organization=${id}`)));
  for (const user of lists.flat()) state.people.set(user.id, nameOf(user));
}

async function loadOrders() {
  const lists = await Promise.all([
    ...ACTIVE.map((status) => api.all(`/orders?status=${status}`)),
    api.get(`/orders?status=completed&limit=${FINISHED_LOADED}`).then((page) => page.items),
    api.get(`/orders?status=cancelled&limit=${FINISHED_LOADED}`).then((page) => page.items),
  ]);
  for (const order of lists.flat()) keepOrder(order);
}

/** The geofences of the followed organizations, drawn on the map (again after a reconnect or an unknown fence). */
async function loadGeofences() {
  const fences = (await api.all("/geofences")).filter((fence) => state.orgIds.includes(fence.organization));
  state.geofences = new Map(fences.map((fence) => [fence.id, fence]));
  map.setGeofences(fences);
  drawCrossings();
}

async function loadNotifications() {
  const page = await api.get("/notifications?unread=true&limit=100");
  state.notifications = new Map(page.items.map((n) => [n.id, n]));
  drawNotifications();
}

async function startConsole() {
  byId("login-view").hidden = true;
  byId("console-view").hidden = false;
  connection("connecting");
  try {
    const me = await api.get("/users/me");
    if (!CONSOLE_ROLES.includes(me.category)) {
      await api.logout();
      signedOut(t("console.refused"));
      return;
    }
    state.me = me;
    showWho();
    byId("who").hidden = false;
    const orgIds = await organizations(me);
    state.orgIds = orgIds;
    live = new Live({
      channels: orgIds.map((id) => `fleet:${id}`),
      token: () => api.accessToken(),
      refresh: () => api.refresh(),
      onFrame,
      onState: connection,
      onReconnected: () => {
        loadNotifications().catch(() => {});
        loadGeofences().catch(() => {});
      },
    });
    live.start();
    await Promise.all([loadPeople(orgIds), loadOrders(),
      api.all("/waybills?status=on_route").then((items) => items.forEach((w) => state.waybills.set(w.id, w))),
      loadNotifications(), loadGeofences(), invitations.load(me.organizations)]);
    for (const vehicle of await api.all("/vehicles")) keepVehicle(vehicle);
    map.fit();
    renderAll();
    byId("console-view").dataset.loaded = "true";
  } catch (error) {
    if (api.signedIn) announce(t("loading.failed", { error: error.message }));
  }
}

function signedOut(reason = "") {
  live?.stop();
  live = null;
  Object.assign(state, {
    me: null, selected: null, people: new Map(), vehicles: new Map(), orders: new Map(), waybills: new Map(),
    notifications: new Map(), presence: new Map(), orgIds: [], geofences: new Map(), crossings: [],
  });
  replay?.close();
  for (const id of [...map.vehicles.keys()]) map.remove(id);
  map.setPickups([]);
  map.setGeofences([]);
  drawCrossings();
  board.render(state.orders);
  details.clear();
  invitations.clear();
  byId("console-view").hidden = true;
  byId("console-view").dataset.loaded = "false";
  byId("who").hidden = true;
  byId("login-view").hidden = false;
  byId("login-error").textContent = reason;
  connection("stopped", { signedOut: true });
  byId("login").focus();
}

async function onLogin(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const button = form.querySelector("button[type=submit]");
  const error = byId("login-error");
  error.textContent = "";
  button.disabled = true;
  try {
    await api.login(byId("login").value.trim(), byId("password").value);
    byId("password").value = "";
    await startConsole();
  } catch (failure) {
    error.textContent = failure.status === 401 ? t("login.wrong") : failure.message;
  } finally {
    button.disabled = false;
  }
}

function showWho() {
  if (state.me) byId("who-name").textContent = `${nameOf(state.me)} (${t(`category.${state.me.category}`)})`;
}

/** Another language chosen on the page: everything drawn from data is drawn again, nothing reloaded. */
function relabel() {
  connection(...connectionState);
  showWho();
  map.redraw();
  renderAll();
  if (!state.selected) details.clear();
  invitations.render();
  replay?.render();
}

async function boot() {
  await setLanguage(preferredLanguage()).catch((error) => console.warn("no message catalogue", error));
  languageSwitch(byId("language"));
  onLanguageChange(relabel);
  map = new FleetMap(byId("map"), { onSelect: selectVehicle });
  board = new Board(byId("board-columns"), { truckLabel, onSelect: selectOrder });
  details = new Details(byId("details"), { people: person, truckLabel, availableTrucks, assign });
  invitations = new Invitations({
    panel: byId("invitations"), form: byId("invite-form"), input: byId("invite-who"), select: byId("invite-org"),
    selectLabel: byId("invite-org-label"), result: byId("invite-result"), list: byId("invitation-list"),
    count: byId("invitation-count"), codeList: byId("invite-codes"),
  }, { api, announce });
  byId("login-form").addEventListener("submit", onLogin);
  byId("logout").addEventListener("click", async () => {
    live?.stop();
    await api.logout();
    signedOut();
  });
  byId("read-all").addEventListener("click", markAllRead);
  byId("fit-map").addEventListener("click", () => map.fit());
  replay = new Replay(map, api, () => [...state.vehicles.values()]
    .sort((a, b) => a.plate.localeCompare(b.plate)).map((v) => ({ id: v.id, label: v.plate })));
  setInterval(drawPresence, 30_000); // keeps the "seen … ago" texts current
  if (api.signedIn) startConsole();
  else signedOut();
}

boot();

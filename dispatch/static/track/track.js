// The public tracking page: reads /api/v1/track/<token>, then follows /ws/track/<token> (read-only),
// resuming with `since` after a reconnect. The map is the console's drawing module.

import { byId } from "/static/console/dom.js";
import { languageSwitch, onLanguageChange, preferredLanguage, setLanguage, t } from "/static/console/i18n.js";
import { FleetMap } from "/static/console/map.js";

const token = decodeURIComponent(location.pathname.split("/").pop());
const TRUCK = "truck";
await setLanguage(preferredLanguage()).catch((error) => console.warn("no message catalogue", error));
languageSwitch(byId("language"));
const map = new FleetMap(byId("map"), { onSelect: () => {} });
let order = null;
let eta = null;
let connection = ["connecting", "conn.connecting"];
let vehicleShown = null;

function statusText(status) {
  const key = `track.status.${status}`;
  const text = t(key);
  return text === key ? status : text;
}

onLanguageChange(() => {
  if (order) showOrder(order);
  if (vehicleShown) showVehicle(...vehicleShown);
  setConnection(...connection);
  map.redraw();
});
let offset = null;
let retry = 1000;

function showOrder(next) {
  order = next;
  const status = byId("status");
  status.textContent = statusText(order.status);
  status.dataset.status = order.status;
  byId("pickup").textContent = order.pickup.address;
  map.setPickups([{ id: order.id, lat: order.pickup.lat, lon: order.pickup.lon, label: t("track.pickup"),
    selected: true, vehicleId: TRUCK }]);
  showEta(order.eta);
}

function showEta(next) {
  eta = next;
  const el = byId("eta");
  el.hidden = !eta;
  if (eta) {
    const minutes = Math.max(1, Math.round(eta.seconds / 60));
    const target = t(`track.target.${eta.target}`);
    el.textContent = t("track.eta", { target: target.startsWith("track.") ? eta.target : target, minutes });
  }
}

function showVehicle(vehicle, driver) {
  vehicleShown = [vehicle, driver];
  byId("truck").textContent = vehicle?.model ?? "—";
  byId("plate").textContent = vehicle?.plate ?? "—";
  byId("driver").textContent = driver?.first_name || "—";
  if (vehicle) {
    map.upsert({ id: TRUCK, plate: vehicle.plate, status: "busy", location: vehicle.location }, [vehicle.plate, ""]);
  }
}

function setConnection(state, key) {
  connection = [state, key];
  const el = byId("connection");
  el.dataset.state = state;
  el.textContent = t(key);
}

async function load() {
  const answer = await fetch(`/api/v1/track/${encodeURIComponent(token)}`, { headers: { Accept: "application/json" } });
  if (answer.status === 404) {
    location.reload(); // the server answers the friendly "link does not work" page
    return false;
  }
  if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
  const view = await answer.json();
  showOrder(view.order);
  showVehicle(view.vehicle, view.driver);
  return true;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const query = offset ? `?since=${encodeURIComponent(offset)}` : "";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/track/${encodeURIComponent(token)}${query}`);
  socket.addEventListener("message", (event) => {
    const frame = JSON.parse(event.data);
    if (frame.offset) offset = frame.offset;
    if (frame.type === "ready") {
      retry = 1000;
      setConnection("live", "conn.live");
    } else if (frame.type === "order") {
      const wasNew = order?.status === "new";
      showOrder(frame.order);
      if (wasNew && frame.order.status !== "new") load(); // a truck was assigned: fetch its plate
    } else if (frame.type === "location") {
      map.move(TRUCK, frame.location);
      map.drawPickups(); // the line from the truck to the pickup follows it
    } else if (frame.type === "eta") {
      showEta(frame.eta);
    }
  });
  socket.addEventListener("close", (event) => {
    if (event.code === 4403) {
      location.reload(); // revoked or expired: the page now says so
      return;
    }
    setConnection("reconnecting", "conn.reconnecting");
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 30_000);
  });
}

load().then((ok) => ok && connect()).catch(() => {
  setConnection("reconnecting", "conn.reconnecting");
  setTimeout(() => location.reload(), 5000);
});

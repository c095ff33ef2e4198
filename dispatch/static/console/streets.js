// Streets under the offline drawing: a Leaflet raster layer (vendored under /static/vendor/leaflet/)
// kept in step with the SVG map's projection. The SVG stays on top and keeps every marker; Leaflet
// only paints tiles. Until a tile has loaded the offline drawing stays as it is; when the first tiles
// fail, `onFail` runs and the page keeps the offline drawing for good.

import * as L from "/static/vendor/leaflet/leaflet-src.esm.js";

const TILE = 256;

function stylesheet() {
  if (document.querySelector("link[data-leaflet]")) return;
  const link = document.createElement("link");
  link.rel = "stylesheet";
  link.href = "/static/vendor/leaflet/leaflet.css";
  link.dataset.leaflet = "";
  document.head.append(link);
}

/** Escape plain text for Leaflet's attribution control, which writes HTML. */
function text(value) {
  const span = document.createElement("span");
  span.textContent = value;
  return span.innerHTML;
}

export class Streets {
  /** `svg` is the map drawing; `template` an XYZ URL; `onFail()` runs when the tiles cannot be had. */
  constructor(svg, template, attribution, onFail) {
    stylesheet();
    this.svg = svg;
    this.host = svg.parentElement;
    this.host.classList.add("map-host");
    this.el = document.createElement("div");
    this.el.className = "map-streets";
    this.el.setAttribute("aria-hidden", "true");
    this.host.insertBefore(this.el, svg);
    this.loaded = 0;
    this.failed = false;
    this.map = L.map(this.el, {
      zoomControl: false, dragging: false, scrollWheelZoom: false, doubleClickZoom: false, boxZoom: false,
      keyboard: false, touchZoom: false, zoomSnap: 0, zoomAnimation: false, fadeAnimation: false,
      markerZoomAnimation: false, inertia: false,
    });
    this.map.attributionControl.setPrefix("Leaflet");
    this.layer = L.tileLayer(template, { attribution: text(attribution), maxZoom: 19, crossOrigin: false });
    this.layer.on("tileload", () => {
      this.loaded += 1;
      this.svg.dataset.tiles = "loaded";
      this.svg.classList.add("streets"); // the drawing's own background and grid give way only now
    });
    this.layer.on("tileerror", () => {
      if (this.loaded === 0) this.fail(onFail);
    });
    this.layer.addTo(this.map);
    svg.dataset.tiles = "loading";
  }

  fail(onFail) {
    if (this.failed) return;
    this.failed = true;
    this.map.remove();
    this.el.remove();
    this.svg.classList.remove("streets");
    this.svg.dataset.tiles = "failed";
    onFail();
  }

  /** Show the part of the world the SVG shows: `view` is its projection, `width` its view-box width. */
  sync(view, width, labelRoom) {
    if (this.failed || !view) return;
    const box = this.svg.getBoundingClientRect();
    const hostBox = this.host.getBoundingClientRect();
    Object.assign(this.el.style, {
      left: `${box.left - hostBox.left}px`, top: `${box.top - hostBox.top}px`,
      width: `${box.width}px`, height: `${box.height}px`,
    });
    this.map.invalidateSize({ pan: false });
    const pxPerUnit = box.width / width;
    const pxPerDegLon = view.cos * view.scale * pxPerUnit;
    const zoom = Math.log2((pxPerDegLon * 360) / TILE);
    // the SVG's centre is right of the projection's centre by half the label room
    const lon = view.lonC + (labelRoom / 2) / (view.cos * view.scale);
    const lat = view.latC; // vertically the two share their centre
    this.map.setView([lat, lon], Math.max(0, Math.min(zoom, 19)), { animate: false });
  }
}

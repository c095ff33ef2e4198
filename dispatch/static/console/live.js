// The console's websocket: subscribes to its channels, remembers the last offset seen on each,
// and after any drop reconnects with exponential backoff, resubscribing with `since` so the
// server replays what was missed.

const CLOSE_UNAUTHENTICATED = 4401;
const CLOSE_FORBIDDEN = 4403;
const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 30_000;

/** A stream id "1700000000000-3" as a comparable pair. */
function offsetKey(offset) {
  const [ms, seq] = String(offset).split("-");
  return [Number(ms) || 0, Number(seq) || 0];
}

function newer(a, b) {
  const [am, as] = offsetKey(a);
  const [bm, bs] = offsetKey(b);
  return am > bm || (am === bm && as > bs);
}

export class Live {
  /**
   * `token()` resolves to a fresh access token and `refresh()` forces a new one;
   * `onFrame(frame)` gets every channel frame; `onState(state, detail)` hears of
   * "connecting" | "live" | "reconnecting" | "stopped" | "forbidden".
   */
  constructor({ channels, token, refresh, onFrame, onState, onReconnected }) {
    this.channels = channels;
    this.token = token;
    this.refreshToken = refresh;
    this.onFrame = onFrame;
    this.onState = onState;
    this.onReconnected = onReconnected ?? (() => {});
    this.offsets = new Map();
    this.socket = null;
    this.attempt = 0;
    this.timer = null;
    this.stopped = true;
    this.connecting = false;
    this.wasLive = false;
    this.pending = new Set();
    this.onOnline = () => {
      this.attempt = 0; // a socket still failing from the offline spell retries at once, not after the backoff
      this.reconnectNow();
    };
    this.onOffline = () => this.drop();
  }

  start() {
    this.stopped = false;
    window.addEventListener("online", this.onOnline);
    window.addEventListener("offline", this.onOffline);
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    window.removeEventListener("online", this.onOnline);
    window.removeEventListener("offline", this.onOffline);
    if (this.socket) this.socket.close(1000, "signed out");
    this.socket = null;
    this.onState("stopped");
  }

  async connect() {
    clearTimeout(this.timer);
    if (this.stopped || this.connecting) return;
    this.connecting = true;
    try {
      await this.open();
    } finally {
      this.connecting = false;
    }
  }

  async open() {
    this.onState(this.wasLive ? "reconnecting" : "connecting", { attempt: this.attempt });
    let token;
    try {
      token = await this.token();
    } catch (_) {
      this.retry();
      return;
    }
    if (this.stopped) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/ws/console?token=${encodeURIComponent(token)}`);
    this.socket = socket;
    socket.addEventListener("message", (event) => this.receive(socket, event.data));
    socket.addEventListener("close", (event) => this.closed(socket, event.code));
  }

  receive(socket, data) {
    if (socket !== this.socket) return;
    let frame;
    try {
      frame = JSON.parse(data);
    } catch (_) {
      return;
    }
    if (frame.type === "ready") {
      this.subscribeAll(socket);
    } else if (frame.type === "subscribed") {
      this.pending.delete(frame.channel);
      if (this.pending.size === 0) this.isLive();
    } else if (frame.type === "error") {
      if (frame.channel) this.pending.delete(frame.channel);
      console.warn("console socket error", frame.code, frame.message);
      if (this.pending.size === 0) this.isLive();
    } else {
      if (frame.channel && frame.offset && (!this.offsets.has(frame.channel)
                                            || newer(frame.offset, this.offsets.get(frame.channel)))) {
        this.offsets.set(frame.channel, frame.offset);
      }
      this.onFrame(frame);
    }
  }

  subscribeAll(socket) {
    this.pending = new Set(this.channels);
    for (const channel of this.channels) {
      const since = this.offsets.get(channel);
      socket.send(JSON.stringify(since ? { type: "subscribe", channel, since } : { type: "subscribe", channel }));
    }
    if (this.pending.size === 0) this.isLive();
  }

  isLive() {
    const again = this.wasLive;
    this.attempt = 0;
    this.wasLive = true;
    this.onState("live");
    if (again) this.onReconnected();
  }

  async closed(socket, code) {
    if (socket !== this.socket) return;
    this.socket = null;
    if (this.stopped) return;
    if (code === CLOSE_FORBIDDEN) {
      this.stopped = true;
      this.onState("forbidden");
      return;
    }
    if (code === CLOSE_UNAUTHENTICATED) {
      try {
        await this.refreshToken();
      } catch (_) {
        // signed out, or the server is unreachable: the retry below sorts it out
      }
    }
    this.retry();
  }

  /** Try again after a growing delay: 0.5 s, 1 s, 2 s … 30 s, with jitter so consoles do not stampede. */
  retry() {
    if (this.stopped) return;
    const delay = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** this.attempt) * (0.8 + Math.random() * 0.4);
    this.attempt += 1;
    this.onState("reconnecting", { attempt: this.attempt, delay });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /** The network went away: the socket is unusable even if the browser has not noticed yet. */
  drop() {
    if (this.stopped || !this.socket) return;
    const socket = this.socket;
    this.socket = null;
    socket.close(4000, "offline");
    this.retry();
  }

  /** The network is back: do not wait out the backoff. */
  reconnectNow() {
    if (this.stopped || this.socket || this.connecting) return;
    this.connect();
  }
}

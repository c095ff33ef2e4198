// The REST client: signs in, keeps the token pair in this tab's sessionStorage, refreshes the
// access token before it expires (and once on a 401), and turns error envelopes into ApiError.

import { currentLanguage, t } from "./i18n.js";

const PREFIX = "/api/v1";
const STORE_KEY = "dispatch.console.tokens";
const EARLY_MS = 60_000; // refresh this long before the access token expires

export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export class Api {
  /** `onSignedOut(reason)` runs when the session cannot be kept (refresh refused). */
  constructor(onSignedOut) {
    this.onSignedOut = onSignedOut;
    this.tokens = load();
    this.refreshing = null;
    this.timer = null;
    if (this.tokens) this.schedule();
  }

  get signedIn() {
    return this.tokens !== null;
  }

  /** Sign in with a username, email or phone and a password. */
  async login(login, password) {
    const pair = await this.send("POST", "/auth/login", { login, password }, false);
    this.keep(pair);
  }

  /** End this session on the server (best effort) and forget the tokens. */
  async logout() {
    try {
      if (this.tokens) await this.send("POST", "/auth/logout", undefined, true);
    } catch (_) {
      // the tokens are forgotten whatever the server said
    }
    this.forget();
  }

  /** An access token valid for at least a little while (refreshed first when close to expiry). */
  async accessToken() {
    if (!this.tokens) throw new ApiError(401, "signed_out", t("api.signIn"));
    if (this.tokens.expiresAt - Date.now() < EARLY_MS / 2) await this.refresh();
    return this.tokens.access;
  }

  /** Swap the refresh token for a new pair; one refresh at a time (a reused refresh token ends the session). */
  refresh() {
    if (!this.refreshing) {
      this.refreshing = this.doRefresh().finally(() => { this.refreshing = null; });
    }
    return this.refreshing;
  }

  async doRefresh() {
    const refreshToken = this.tokens?.refresh;
    if (!refreshToken) throw new ApiError(401, "signed_out", t("api.signIn"));
    try {
      this.keep(await this.send("POST", "/auth/refresh", { refresh_token: refreshToken }, false));
    } catch (error) {
      if (error instanceof ApiError && error.status >= 400 && error.status < 500) {
        this.forget();
        this.onSignedOut(t("api.ended"));
      }
      throw error;
    }
  }

  get(path) {
    return this.request("GET", path);
  }

  post(path, body) {
    return this.request("POST", path, body);
  }

  /** An authenticated call; a 401 refreshes the tokens once and tries again. */
  async request(method, path, body) {
    await this.accessToken();
    try {
      return await this.send(method, path, body, true);
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 401 || !this.tokens) throw error;
      await this.refresh();
      return this.send(method, path, body, true);
    }
  }

  /** Every item of a list endpoint, page by page (the API gives at most 200 a page). */
  async all(path, limit = 200, most = 1000) {
    const items = [];
    const joiner = path.includes("?") ? "&" : "?";
    for (let offset = 0; offset < most; offset += limit) {
      const page = await this.get(`${path}${joiner}limit=${limit}&offset=${offset}`);
      items.push(...page.items);
      if (items.length >= page.total || page.items.length === 0) break;
    }
    return items;
  }

  async send(method, path, body, withToken) {
    const headers = { Accept: "application/json", "Accept-Language": currentLanguage() };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (withToken && this.tokens) headers.Authorization = `Bearer ${this.tokens.access}`;
    let response;
    try {
      response = await fetch(PREFIX + path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store",
      });
    } catch (_) {
      throw new ApiError(0, "network_error", t("api.network"));
    }
    if (response.status === 204) return null;
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const error = data?.error ?? {};
      throw new ApiError(response.status, error.code ?? "http_error",
                         error.message ?? `The server answered ${response.status}.`, error.details ?? {});
    }
    return data;
  }

  keep(pair) {
    this.tokens = {
      access: pair.access_token,
      refresh: pair.refresh_token,
      expiresAt: Date.now() + pair.expires_in * 1000,
    };
    sessionStorage.setItem(STORE_KEY, JSON.stringify(this.tokens));
    this.schedule();
  }

  forget() {
    this.tokens = null;
    clearTimeout(this.timer);
    sessionStorage.removeItem(STORE_KEY);
  }

  schedule() {
    clearTimeout(this.timer);
    const lifetime = this.tokens.expiresAt - Date.now();
    const wait = Math.max(1_000, Math.min(lifetime - EARLY_MS, lifetime * 0.8));
    this.timer = setTimeout(() => this.refresh().catch(() => this.retryLater()), wait);
  }

  retryLater() {
    // a network error while refreshing: try again soon, the access token may still be good
    if (!this.tokens) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh().catch(() => this.retryLater()), 10_000);
  }
}

function load() {
  try {
    const tokens = JSON.parse(sessionStorage.getItem(STORE_KEY) ?? "null");
    return tokens && tokens.access && tokens.refresh ? tokens : null;
  } catch (_) {
    return null;
  }
}

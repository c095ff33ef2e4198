// The organization's pending invitations: invite someone by email, phone or user id, revoke one.
// Nobody is added directly: the invitee accepts from their own account, and then appears as a member.

import { h } from "./dom.js";
import { dateTime, t } from "./i18n.js";

const USER_ID = /^[0-9a-f]{24}$/i;

/** The request body for what the manager typed: an email address, a user id, or else a phone number. */
export function inviteeOf(text) {
  const who = text.trim();
  if (who.includes("@")) return { email: who };
  if (USER_ID.test(who)) return { user_id: who.toLowerCase() };
  return { phone: who };
}

function whoOf(invitation) {
  return invitation.email ?? invitation.phone ?? t("inv.user", { id: invitation.user_id.slice(-6) });
}

function firstProblem(error) {
  return Object.values(error.details ?? {}).flat().find((m) => typeof m === "string") ?? error.message;
}

export class Invitations {
  /** `elements`: the panel's nodes by role; `api` the REST client; `announce(text)` the live region. */
  constructor(elements, { api, announce }) {
    Object.assign(this, elements);
    this.api = api;
    this.announce = announce;
    this.orgs = [];
    this.items = [];
    this.codes = new Map(); // organization id → its sign-up code for drivers and clients
    this.form.addEventListener("submit", (event) => this.invite(event));
  }

  /** Show the panel for these organizations (`{id, name}` the caller manages) and load their invitations. */
  async load(orgs) {
    this.orgs = orgs;
    this.panel.hidden = orgs.length === 0;
    this.select.replaceChildren(...orgs.map((org) => h("option", { value: org.id }, org.name)));
    this.select.hidden = this.selectLabel.hidden = orgs.length < 2;
    await this.reload();
  }

  /** Fetch the pending invitations again (after an invitation was accepted, for one). */
  async reload() {
    const [lists, orgs] = await Promise.all([
      Promise.all(this.orgs.map((org) => this.api.all(`/organizations/${org.id}/invitations`))),
      Promise.all(this.orgs.map((org) => this.api.get(`/organizations/${org.id}`))),
    ]);
    this.items = lists.flat();
    this.codes = new Map(orgs.map((org) => [org.id, org.invite_code]));
    this.render();
  }

  async newCode(org) {
    try {
      this.codes.set(org.id, (await this.api.post(`/organizations/${org.id}/invite-code`)).invite_code);
      this.announce(t("inv.newCodeDone"));
    } catch (error) {
      this.announce(t("inv.newCodeFailed", { error: error.message }));
    }
    this.render();
  }

  clear() {
    this.orgs = [];
    this.items = [];
    this.codes = new Map();
    this.panel.hidden = true;
    this.result.textContent = "";
    this.render();
  }

  render() {
    const rows = [...this.items].sort((a, b) => b.created_at.localeCompare(a.created_at));
    this.count.textContent = String(rows.length);
    this.codeList.replaceChildren(...this.orgs.map((org) => h("li", { class: "row", "data-org-id": org.id },
      h("span", {}, this.orgs.length > 1 ? `${org.name}: ` : t("inv.code"),
        h("code", {}, this.codes.get(org.id) ?? t("inv.none"))),
      h("button", { type: "button", class: "link", onclick: () => this.newCode(org),
                    "aria-label": t("inv.newCodeLabel", { org: org.name }) }, t("inv.newCode")))));
    this.list.replaceChildren(...(rows.length ? rows.map((inv) => h("li", { "data-invitation-id": inv.id },
      h("div", { class: "row" }, h("span", { class: "name" }, whoOf(inv)),
        h("button", { type: "button", class: "link", onclick: () => this.revoke(inv),
                      "aria-label": t("inv.revokeLabel", { who: whoOf(inv) }) }, t("inv.revoke"))),
      h("div", { class: "muted" }, this.orgs.length > 1 ? `${inv.organization.name} · ` : "",
        t("inv.until", { date: dateTime(inv.expires_at, { dateStyle: "short" }) }))))
      : [h("li", { class: "muted" }, t("inv.empty"))]));
  }

  async invite(event) {
    event.preventDefault();
    const button = this.form.querySelector("button[type=submit]");
    const body = inviteeOf(this.input.value);
    button.disabled = true;
    try {
      const invitation = await this.api.post(`/organizations/${this.select.value}/invitations`, body);
      this.items = [invitation, ...this.items.filter((inv) => inv.id !== invitation.id)];
      this.input.value = "";
      this.result.textContent = t("inv.done", { who: whoOf(invitation) });
      this.render();
    } catch (error) {
      this.result.textContent = t("inv.failed", { error: firstProblem(error) });
    } finally {
      button.disabled = false;
    }
  }

  async revoke(invitation) {
    try {
      await this.api.request("DELETE", `/organizations/${invitation.organization.id}/invitations/${invitation.id}`);
      this.announce(t("inv.revoked", { who: whoOf(invitation) }));
    } catch (error) {
      this.announce(t("inv.revokeFailed", { error: error.message }));
    }
    await this.reload().catch(() => {});
  }
}

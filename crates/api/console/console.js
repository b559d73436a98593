// pubhook's web console: one page, no framework. Every view is one request to the API with the
// signed-in user's `username` and `api-key` headers; this file holds no data of its own.
//
// Security (docs/console.md):
// - The API key lives in `session` below, in this tab's memory only: never a cookie, web
//   storage or the URL. Reloading the tab signs out.
// - Every value from the API is rendered as text (`textContent`, `Element.append` of strings),
//   never parsed as HTML; the page's Content-Security-Policy also requires Trusted Types, so an
//   HTML string given to `innerHTML` would throw rather than render.
// - The view and its paging live in the URL's fragment (`#/triggered?start=0&limit=20`), which
//   the browser never sends; `start` and `limit` go to the API as they are, and a bad one is
//   answered by the API's own 400, shown like any other error.
"use strict";

(function () {
  /** The signed-in user: `{username, apiKey, account}`, or null. */
  let session = null;
  /** Bumped on every navigation, so an answer to a view left meanwhile is dropped. */
  let generation = 0;
  /** A message for the next view, shown once it is navigated to. */
  let flash = "";

  const DEFAULT_LIMIT = 20;
  const TRIGGER_ATTEMPTS = 50;

  const $ = (id) => document.getElementById(id);

  // ---- DOM helpers: every string becomes a text node. ----

  /** An element with `props` (className, title, href, type...) and children (nodes or text). */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value === undefined || value === null) continue;
      if (name === "dataset") Object.assign(node.dataset, value);
      else if (name === "onclick") node.addEventListener("click", value);
      else node.setAttribute(name === "className" ? "class" : name, String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function show(node, visible) {
    node.hidden = !visible;
  }

  function say(node, text) {
    node.textContent = text || "";
    show(node, Boolean(text));
  }

  function time(seconds) {
    if (typeof seconds !== "number") return "";
    return new Date(seconds * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
  }

  function badge(text, kind) {
    return el("span", { className: "badge" + (kind ? " outcome-" + kind : "") }, text);
  }

  function json(value) {
    return el("pre", {}, typeof value === "string" ? value : JSON.stringify(value, null, 2));
  }

  /** A table of `rows`, one column per `[title, cell(row)]`. */
  function table(columns, rows, className) {
    return el(
      "table",
      { className },
      el("thead", {}, el("tr", {}, columns.map(([title]) => el("th", { scope: "col" }, title)))),
      el(
        "tbody",
        {},
        rows.map((row) => el("tr", {}, columns.map(([, cell]) => el("td", {}, cell(row))))),
      ),
    );
  }

  function link(href, text) {
    return el("a", { href }, text);
  }

  // ---- The API. ----

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  /** One request as the signed-in user: `{status, body}` (body null on 204), or ApiError. */
  async function api(method, path, body, credentials) {
    const who = credentials || session;
    const headers = { username: who.username, "api-key": who.apiKey };
    const init = { method, headers, credentials: "omit", cache: "no-store", redirect: "error" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, "The API could not be reached: " + e.message);
    }
    if (response.status === 204) return { status: 204, body: null };
    const text = await response.text();
    let parsed = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch (_) {
      parsed = null;
    }
    if (!response.ok) {
      const message = parsed && typeof parsed.Error === "string" ? parsed.Error : text;
      throw new ApiError(response.status, message || "HTTP " + response.status);
    }
    return { status: response.status, body: parsed };
  }

  // ---- Sign in and out. ----

  async function signIn(event) {
    event.preventDefault();
    const username = $("username").value;
    const keyInput = $("api-key");
    const apiKey = keyInput.value;
    // The key leaves the DOM at once; only `session` keeps it.
    keyInput.value = "";
    say($("sign-in-error"), "");
    try {
      const { body } = await api("GET", "/v1/me", undefined, { username, apiKey });
      session = { username, apiKey, account: body };
    } catch (e) {
      say($("sign-in-error"), "Sign-in failed: " + e.message);
      return;
    }
    $("who-name").textContent = session.account.username;
    say($("who-role"), session.account.is_admin ? "admin" : "account");
    document.body.classList.toggle("is-admin", session.account.is_admin === true);
    for (const a of document.querySelectorAll(".admin-only")) show(a, session.account.is_admin);
    show($("sign-in"), false);
    show($("who"), true);
    show($("app"), true);
    if (!location.hash || location.hash === "#") location.hash = "#/triggered";
    else route();
  }

  function signOut() {
    session = null;
    generation += 1;
    $("view").replaceChildren();
    say($("view-error"), "");
    say($("notice"), "");
    show($("app"), false);
    show($("who"), false);
    show($("sign-in"), true);
    $("username").focus();
  }

  // ---- Routing: `#/<view>[/<id>][?query]`. ----

  function parseHash() {
    const raw = location.hash.replace(/^#\/?/, "");
    const [path, query] = raw.split("?", 2);
    const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
    return { parts, query: new URLSearchParams(query || "") };
  }

  /** `#/<view>?<params>`, keeping the params given. */
  function hashOf(view, params) {
    const query = new URLSearchParams(params).toString();
    return "#/" + view + (query ? "?" + query : "");
  }

  const VIEWS = {
    registrations: viewRegistrations,
    subscriptions: viewSubscriptions,
    triggered: viewTriggered,
    trigger: viewTrigger,
    attempts: viewAttempts,
    accounts: viewAccounts,
    "dead-letters": viewDeadLetters,
    workers: viewWorkers,
  };

  async function route() {
    if (!session) return;
    const { parts, query } = parseHash();
    const name = VIEWS[parts[0]] ? parts[0] : "triggered";
    for (const a of $("nav").querySelectorAll("a")) {
      const target = a.getAttribute("href").slice(2);
      const current = target === name || (name === "trigger" && target === "triggered");
      a.classList.toggle("current", current);
    }
    const mine = ++generation;
    say($("view-error"), "");
    $("view").replaceChildren(el("p", { className: "muted" }, "Loading…"));
    let content;
    try {
      content = await VIEWS[name](parts.slice(1), query);
    } catch (e) {
      if (mine !== generation) return;
      $("view").replaceChildren();
      say($("view-error"), e instanceof ApiError ? e.message : "Error: " + e.message);
      return;
    }
    if (mine !== generation) return;
    $("view").replaceChildren(content);
  }

  function title(text) {
    $("view-title").textContent = text;
  }

  // ---- Paged lists. ----

  /** `start` and `limit` as the fragment gives them, untouched (the API checks them). */
  function paging(query) {
    return {
      start: query.has("start") ? query.get("start") : "0",
      limit: query.has("limit") ? query.get("limit") : String(DEFAULT_LIMIT),
    };
  }

  /**
   * One page of `path`: its records under `key`, a table of them, and the links to the pages
   * beside it. `view` and `extra` make those links.
   */
  async function pagedView({ view, path, key, columns, query, extra, empty, toolbar }) {
    const { start, limit } = paging(query);
    const params = new URLSearchParams({ start, limit });
    const { body } = await api("GET", path + "?" + params.toString());
    const records = body ? body[key] || [] : [];
    const here = { ...(extra || {}) };
    const first = Number(start);
    const size = Number(limit);
    const pager = el("div", { className: "pager" });
    if (first > 0) {
      pager.append(
        link(hashOf(view, { ...here, start: Math.max(0, first - size), limit }), "← Previous page"),
      );
    }
    pager.append(
      el(
        "span",
        { className: "muted" },
        records.length ? `Records ${first + 1}–${first + records.length}` : "No records here",
      ),
    );
    if (body && body.next_start !== undefined && body.next_start !== null) {
      pager.append(
        link(hashOf(view, { ...here, start: body.next_start, limit }), "Next page →"),
      );
    }
    const sizes = el("select", { "aria-label": "Records per page" });
    for (const n of [10, 20, 50, 100]) {
      const option = el("option", { value: n }, `${n} a page`);
      if (String(n) === limit) option.selected = true;
      sizes.append(option);
    }
    sizes.addEventListener("change", () => {
      location.hash = hashOf(view, { ...here, start: 0, limit: sizes.value });
    });
    const bar = el("div", { className: "toolbar" }, toolbar || [], pager, sizes);
    const list = records.length
      ? table(columns, records, "records")
      : el("p", { className: "muted" }, empty || "Nothing here yet.");
    return el("div", {}, bar, list);
  }

  /** Links between the caller's own records and everyone's. */
  function scopeSwitch(view, scope, mineLabel, allLabel) {
    return el(
      "span",
      {},
      scope === "all" ? link(hashOf(view, {}), mineLabel) : el("strong", {}, mineLabel),
      " · ",
      scope === "all" ? el("strong", {}, allLabel) : link(hashOf(view, { scope: "all" }), allLabel),
    );
  }

  // ---- Views. ----

  /** A list with two scopes: the caller's own records (`mine`) and everyone's (`all`). */
  function scopedView(view, query, { mine, all, key, noun, columns }) {
    const scope = query.get("scope") === "all" ? "all" : "mine";
    title(scope === "all" ? `All ${noun}` : `Your ${noun}`);
    return pagedView({
      view,
      path: scope === "all" ? all : mine,
      key,
      query,
      extra: scope === "all" ? { scope } : {},
      toolbar: scopeSwitch(view, scope, "Yours", "Everyone's"),
      empty: `No ${noun}.`,
      columns,
    });
  }

  function viewRegistrations(_, query) {
    return scopedView("registrations", query, {
      mine: "/v1/webhook/registration",
      all: "/v1/webhook/registrations",
      key: "registrations",
      noun: "registrations",
      columns: [
        ["Event", (r) => el("strong", {}, r.event)],
        ["Description", (r) => r.description],
        ["Payload", (r) => json(r.event_data)],
        ["Owner", (r) => el("code", {}, r.account_id)],
        ["Created", (r) => time(r.epoch)],
        ["Id", (r) => el("code", {}, r.id)],
        [
          "",
          (r) =>
            r.account_id === session.account.id
              ? el("button", { type: "button", className: "primary", onclick: () => trigger(r) }, "Trigger")
              : "",
        ],
      ],
    });
  }

  /** A button's request: the messages cleared, then `failure: <the API's error>` if it fails. */
  async function act(failure, run) {
    say($("notice"), "");
    say($("view-error"), "");
    try {
      await run();
    } catch (e) {
      say($("view-error"), failure + ": " + e.message);
    }
  }

  function trigger(registration) {
    return act("Trigger failed", async () => {
      const { body } = await api("POST", "/v1/webhook/triggered/" + encodeURIComponent(registration.id));
      flash = `Triggered “${registration.event}”.`;
      location.hash = "#/trigger/" + encodeURIComponent(body.id);
    });
  }

  function viewSubscriptions(_, query) {
    return scopedView("subscriptions", query, {
      mine: "/v1/webhook/subscription",
      all: "/v1/webhook/subscriptions",
      key: "subscriptions",
      noun: "subscriptions",
      columns: [
        ["Id", (s) => el("code", {}, s.id)],
        ["Registration", (s) => el("code", {}, s.registration_id)],
        ["Subscriber", (s) => el("code", {}, s.account_id)],
        ["Filter", (s) => (s.filter === undefined ? el("span", { className: "muted" }, "none") : json(s.filter))],
        ["Created", (s) => time(s.epoch)],
      ],
    });
  }

  async function viewTriggered(_, query) {
    title("Triggered");
    return pagedView({
      view: "triggered",
      path: "/v1/webhook/triggered",
      key: "triggered_webhooks",
      query,
      empty: "Nothing was triggered (or it is past its retention).",
      columns: [
        ["Trigger", (t) => link("#/trigger/" + encodeURIComponent(t.id), t.id)],
        ["Registration", (t) => el("code", {}, t.registration_id)],
        ["Triggered at", (t) => time(t.epoch)],
      ],
    });
  }

  const OUTCOMES = ["delivered", "pending", "failed", "skipped", "filtered"];

  function attemptColumns(triggeredId, canRedeliver) {
    const columns = [
      ["#", (a) => a.attempt + (a.manual ? " (redelivery)" : "")],
      ["Outcome", (a) => badge(a.outcome, a.outcome)],
      ["Status", (a) => (a.status_code === null ? "—" : String(a.status_code))],
      ["Error class", (a) => a.error || "—"],
      ["Latency", (a) => `${Number(a.latency_ms).toFixed(1)} ms`],
      ["At", (a) => time(a.epoch)],
      ["Next attempt", (a) => (a.next_attempt_in_ms ? `in ${Math.round(a.next_attempt_in_ms / 1000)} s` : "")],
      ["Subscription", (a) => el("code", {}, a.subscription_id)],
    ];
    if (canRedeliver) {
      columns.push([
        "",
        (a) =>
          el(
            "button",
            { type: "button", onclick: () => redeliver(triggeredId, { subscription_id: a.subscription_id }) },
            "Redeliver",
          ),
      ]);
    }
    return columns;
  }

  async function viewTrigger([id]) {
    title("Trigger");
    if (!id) throw new Error("no trigger id in the address");
    const path = "/v1/webhook/triggered/" + encodeURIComponent(id) + "?attempts=" + TRIGGER_ATTEMPTS;
    const { body: t } = await api("GET", path);
    title("Trigger " + t.id);
    const summary = t.deliveries || {};
    const fields = el(
      "dl",
      { className: "fields" },
      el("dt", {}, "Registration"),
      el("dd", {}, el("code", {}, t.registration_id)),
      el("dt", {}, "Triggered at"),
      el("dd", {}, time(t.epoch)),
      t.source_event === undefined ? [] : [el("dt", {}, "Sender's event"), el("dd", {}, t.source_event)],
      t.event_data === undefined ? [] : [el("dt", {}, "Its own payload"), el("dd", {}, json(t.event_data))],
    );
    const counts = el(
      "div",
      { className: "summary", "aria-label": "Delivery summary" },
      OUTCOMES.map((name) => badge(`${name}: ${summary[name] ?? 0}`, name)),
    );
    // Only the registration's owner may redeliver: the record does not say who that is, so an
    // admin who is not the owner gets the API's 401 as the answer to the button.
    const canRedeliver = true;
    const actions = el(
      "div",
      { className: "toolbar" },
      canRedeliver
        ? [
            el("button", { type: "button", onclick: () => redeliver(t.id, undefined) }, "Redeliver failed"),
            el("button", { type: "button", onclick: () => redeliver(t.id, { only_failed: false }) }, "Redeliver all"),
          ]
        : [],
      el("button", { type: "button", onclick: route }, "Refresh"),
    );
    const attempts = t.attempts || [];
    const list = attempts.length
      ? table(attemptColumns(t.id, canRedeliver), attempts, "attempts")
      : el("p", { className: "muted" }, "No delivery attempt yet.");
    const more =
      t.attempts_next_start === undefined
        ? []
        : link(
            hashOf("attempts/" + encodeURIComponent(t.id), { start: t.attempts_next_start, limit: TRIGGER_ATTEMPTS }),
            "Later attempts →",
          );
    return el("div", {}, fields, el("h3", {}, "Recent deliveries"), counts, actions, list, more);
  }

  async function viewAttempts([id], query) {
    title("Attempts of trigger " + (id || ""));
    if (!id) throw new Error("no trigger id in the address");
    return pagedView({
      view: "attempts/" + encodeURIComponent(id),
      path: "/v1/webhook/triggered/" + encodeURIComponent(id) + "/deliveries",
      key: "deliveries",
      query,
      toolbar: link("#/trigger/" + encodeURIComponent(id), "← The trigger"),
      empty: "No more attempts.",
      columns: attemptColumns(id, false),
    });
  }

  function redeliver(triggeredId, body) {
    return act("Redelivery failed", async () => {
      const path = "/v1/webhook/triggered/" + encodeURIComponent(triggeredId) + "/redeliver";
      const { body: answer } = await api("POST", path, body);
      await route();
      const busy = answer.in_progress ? `; ${answer.in_progress} already in progress` : "";
      say($("notice"), `Redelivering ${answer.redelivering}${busy}.`);
    });
  }

  async function viewAccounts(_, query) {
    title("Accounts");
    return pagedView({
      view: "accounts",
      path: "/v1/accounts",
      key: "accounts",
      query,
      columns: [
        ["Username", (a) => el("strong", {}, a.username)],
        ["Role", (a) => (a.is_admin ? badge("admin") : "")],
        ["Endpoint", (a) => el("code", {}, a.endpoint)],
        ["Failed count", (a) => String(a.failed_count)],
        ["Created", (a) => time(a.epoch)],
        ["Id", (a) => el("code", {}, a.id)],
      ],
    });
  }

  async function viewDeadLetters(_, query) {
    title("Dead letters");
    return pagedView({
      view: "dead-letters",
      path: "/v1/admin/dead-letters",
      key: "dead_letters",
      query,
      empty: "No dead letters.",
      columns: [
        ["Id", (d) => el("code", {}, d.id)],
        ["Set aside", (d) => time(d.dead_at)],
        ["Handed out", (d) => `${d.deliveries} times`],
        ["Redriven", (d) => (d.redriven_at ? `${time(d.redriven_at)} as ${d.redriven_as}` : "no")],
        ["Job", (d) => json(d.job)],
      ],
    });
  }

  async function viewWorkers() {
    title("Live workers");
    const { body } = await api("GET", "/v1/admin/workers");
    const workers = (body && body.workers) || [];
    if (!workers.length) return el("p", { className: "muted" }, "No live worker.");
    const ms = (value) => time(value / 1000);
    return table(
      [
        ["Id", (w) => el("code", {}, w.id)],
        ["Host", (w) => w.host],
        ["Pid", (w) => String(w.pid)],
        ["Started", (w) => ms(w.started)],
        ["Last beat", (w) => ms(w.last_beat)],
        ["In flight", (w) => String(w.in_flight)],
        ["Running jobs", (w) => String(w.running_jobs)],
        ["Last minute", (w) => json(w.last_minute)],
      ],
      workers,
      "workers",
    );
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("sign-in-form").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", signOut);
    window.addEventListener("hashchange", () => {
      say($("notice"), flash);
      flash = "";
      route();
    });
    $("username").focus();
  });
})();

// Request Triage review page. Plain browser JavaScript, no build step, no libraries.
//
// Safety rule: request text (titles, texts, comments, partner names, similar requests) is
// user content. It is only ever put into the page with textContent / createTextNode, never
// with innerHTML, so "<script>…" or "<img onerror=…>" shows up literally and runs nothing.
"use strict";

(() => {
  const OUTCOMES = {
    security_fix: "Prioritise: security fix",
    partner_configures: "Partner: configure it",
    prioritize_broad_value: "Prioritise: broad value",
    decline_limited_use: "Decline early: limited use",
    needs_review: "Needs review",
  };
  const LABEL_NAMES = {
    msp_configurable: "Partner-configurable",
    security: "Security",
    broad_value: "Broad value",
  };
  const PAGE_SIZE = 50;
  const SESSION_NAME = "triage.reviewer";
  const SESSION_KEY = "triage.apiKey";
  // The inbox filters, as the address and the API name them; a missing one is its default.
  const FILTERS = ["q", "status", "lang", "label", "outcome", "sort"];
  const FILTER_DEFAULTS = { q: "", status: "pending", lang: "", label: "", outcome: "", sort: "received_at" };
  const MAX_Q = 200; // the API's limit for q
  const MAX_PAGE = 1000000; // offset stays far below the API's limit of 10^9
  const PENDING_SCAN_PAGES = 20; // Shift+J / Shift+K look this many inbox pages ahead

  let searchTimer = 0; // a search being typed is read 300 ms after the last key

  const state = {
    config: { api_key_header: "X-API-Key", blind_review_share: 0 },
    model: null, // GET /v1/model
    labels: [],
    filters: { ...FILTER_DEFAULTS }, // the filters the inbox list was (or is being) read with
    // freshFor: the request a navigation just read the inbox page for (it need not be read
    // again to place that request); unread: the page could not be read for the request shown.
    // shown: the list (contextQuery) whose rows the inbox table holds.
    inbox: { rows: [], total: 0, offset: 0, selected: 0, loads: 0, latest: null, freshFor: null, unread: false, shown: null },
    order: [], // request ids in the current inbox order, for next / previous
    current: null, // GET /v1/requests/{id}
    decision: null, // { labels: Set, outcomeTouched: bool }
    baseline: null, // the decision as the request was opened: what "unsaved" compares with
    drafts: new Map(), // request id -> unsaved decision left behind in this tab
    restored: false, // the decision shown is a draft brought back
    hidden: new Set(), // labels whose highlights are switched off in the legend
    busy: false,
    routed: null, // the address route() last handled (hashchange and popstate both report it)
    draftsOwner: null, // who left the drafts when a refused key signed them out (claimDrafts)
    visit: 0, // counts route()s: an answer that comes after the reviewer moved on is not shown
  };

  // --- small DOM helpers (text only) ------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  function labelClass(label) {
    const i = state.labels.indexOf(label);
    return `lab-${i >= 0 ? Math.min(i, 3) : 3}`;
  }

  function labelName(label) {
    return LABEL_NAMES[label] || label;
  }

  function labelChip(label) {
    return el("span", { class: `chip lab ${labelClass(label)}`, title: label, "data-label": label }, labelName(label));
  }

  function outcomeBadge(node, outcome) {
    node.className = `outcome o-${outcome}`;
    node.textContent = OUTCOMES[outcome] || outcome;
    node.dataset.outcome = outcome;
  }

  function fmtTime(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return iso;
    return date.toLocaleString(undefined, { day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit" });
  }

  function show(node, visible) {
    node.hidden = !visible;
  }

  let toastTimer = 0;
  function toast(message) {
    const node = $("toast");
    node.textContent = message;
    node.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { node.hidden = true; }, 4000);
  }

  // Outcome from labels, in the labeling guide's order.
  function outcomeFor(labels) {
    if (labels.has("security")) return "security_fix";
    if (labels.has("msp_configurable")) return "partner_configures";
    if (labels.has("broad_value")) return "prioritize_broad_value";
    return "decline_limited_use";
  }

  // --- API ----------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
      this.status = status;
      this.problem = problem;
    }
  }

  async function api(path, { method = "GET", body, raw = false } = {}) {
    const headers = { Accept: "application/json" };
    const key = sessionStorage.getItem(SESSION_KEY);
    if (key) headers[state.config.api_key_header] = key;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "same-origin",
      });
    } catch (_) {
      // fetch() only says "Failed to fetch": say what it means for the reviewer.
      throw new Error(
        method === "GET"
          ? "The triage service cannot be reached; what is shown may be out of date. Try again when it is back."
          : path === "/v1/suggest"
            ? "The triage service cannot be reached, so there is no suggestion. Try again when it is back."
            : "The triage service cannot be reached; nothing was saved. Try again when it is back.",
      );
    }
    if (!response.ok) {
      let problem = null;
      try { problem = await response.json(); } catch (_) { /* not JSON */ }
      if (response.status === 401 && path !== "/v1/suggest") signOut("Your API key was not accepted. Please sign in again.");
      throw new ApiError(response.status, problem);
    }
    if (raw) return response;
    return response.json();
  }

  function showError(node, error) {
    node.textContent = error instanceof Error ? error.message : String(error);
    node.hidden = false;
  }

  // --- session --------------------------------------------------------------------------------

  // Drafts kept through a sign-out by the page go back to the reviewer who left them, and to
  // nobody else: signed in under another name, this tab discards them before showing anything.
  function claimDrafts() {
    const owner = state.draftsOwner;
    if (owner === null) return;
    state.draftsOwner = null;
    show($("login-drafts"), false);
    if (owner === sessionStorage.getItem(SESSION_NAME)) return;
    const count = state.drafts.size;
    state.drafts.clear();
    if (count) toast(`Unsaved changes to ${count} request(s) left in this tab by the reviewer signed in before were discarded.`);
  }

  function signedIn() {
    return Boolean(sessionStorage.getItem(SESSION_KEY) && sessionStorage.getItem(SESSION_NAME));
  }

  // Signed out by the page (a message says why: the key was refused) rather than by the
  // reviewer: nobody chose to give up the unsaved changes, so they are kept for this reviewer
  // (the ones on screen too, as route() leaves the request) and come back when the same name
  // signs in again; anyone else signing in in this tab never sees them (claimDrafts). Signing
  // out by hand asks first and discards them (onSignOut).
  function signOut(message) {
    const name = sessionStorage.getItem(SESSION_NAME);
    if (message && name && state.draftsOwner === null) state.draftsOwner = name;
    const count = draftCount();
    sessionStorage.removeItem(SESSION_KEY);
    sessionStorage.removeItem(SESSION_NAME);
    renderWho();
    if (message) showError($("login-error"), message);
    if (count && state.draftsOwner !== null) {
      $("login-drafts").replaceChildren(
        `Your unsaved changes to ${count} request(s) are kept in this tab for `,
        el("bdi", {}, state.draftsOwner),
        ": sign in again under that name to get them back. Signing in under another name discards them.",
      );
      show($("login-drafts"), true);
    }
    if (!location.hash.startsWith("#/login")) {
      state.after = location.hash;
      location.hash = "#/login";
    }
  }

  // The API's rule for a reviewer's name (service/schemas.py): one line, no control or
  // direction-changing characters, and something visible. Checked here so that a name pasted
  // with a tab or a zero-width space is refused at sign-in, not at the first decision.
  function reviewerNameProblem(name) {
    if (/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/u.test(name)) {
      return "Your name may not contain tabs, line breaks, or control or text-direction characters.";
    }
    if (!/[^\s\p{Cc}\p{Cf}\p{Z}\u115f\u1160\u2800\u3164\uffa0]/u.test(name)) {
      return "Please enter your name: it shows nothing but blanks or invisible characters.";
    }
    return null;
  }

  function renderWho() {
    const name = sessionStorage.getItem(SESSION_NAME);
    $("who-name").textContent = name ? `Reviewer: ${name}` : "";
    show($("who"), Boolean(name));
  }

  async function onLogin(event) {
    event.preventDefault();
    const name = $("login-name").value.trim();
    const key = $("login-key").value.trim();
    const error = $("login-error");
    error.hidden = true;
    if (!name || !key) {
      showError(error, "Please enter your name and the API key.");
      return;
    }
    const nameProblem = reviewerNameProblem(name);
    if (nameProblem) {
      showError(error, nameProblem);
      return;
    }
    sessionStorage.setItem(SESSION_NAME, name);
    sessionStorage.setItem(SESSION_KEY, key);
    try {
      await api("/v1/requests?limit=1");
    } catch (err) {
      if (err.status === 401) return; // signOut() already showed why
      showError(error, err);
      return;
    }
    $("login-key").value = "";
    renderWho();
    const target = state.after && !state.after.startsWith("#/login") ? state.after : "#/inbox";
    state.after = null;
    // Setting the address it already has fires no hashchange: route by hand then.
    if (location.hash === target) route(); else location.hash = target;
  }

  // --- routing --------------------------------------------------------------------------------

  const VIEWS = ["login", "inbox", "request", "try", "model"];

  function setView(name) {
    for (const view of VIEWS) show($(`view-${view}`), view === name);
    if (name !== "request") $("view-request").removeAttribute("aria-busy");
    for (const link of document.querySelectorAll("[data-nav]")) {
      if (link.dataset.nav === name || (name === "request" && link.dataset.nav === "inbox")) {
        link.setAttribute("aria-current", "page");
      } else {
        link.removeAttribute("aria-current");
      }
    }
    if (state.view !== name) $("main").focus({ preventScroll: true });
    state.view = name;
  }

  // The address is "#/<view>[/<id>][?<inbox filters and page>]". The inbox and a request
  // opened from it carry the filters, sort and page, so a reload, Back / Forward or a link
  // shared with someone shows the same list (and places the request in it).
  function splitHash(hash) {
    const cut = hash.indexOf("?");
    return cut < 0 ? { path: hash, query: "" } : { path: hash.slice(0, cut), query: hash.slice(cut + 1) };
  }

  function hasOption(select, value) {
    return [...select.options].some((option) => option.value === value);
  }

  // Filters and offset from an address's query; whatever is not valid falls back to its default.
  function parseContext(query) {
    const params = new URLSearchParams(query);
    const filters = { ...FILTER_DEFAULTS };
    for (const name of FILTERS) {
      if (!params.has(name)) continue;
      let value = params.get(name);
      if (name === "q") {
        value = value.trim();
        if (value.length <= MAX_Q && !value.includes("\u0000")) filters.q = value;
        continue;
      }
      if (name === "status" && value === "all") value = "";
      if (hasOption($(`f-${name}`), value)) filters[name] = value;
    }
    const page = params.get("page") || "";
    const number = /^[1-9]\d{0,6}$/.test(page) ? Math.min(Number(page), MAX_PAGE) : 1;
    return { filters, offset: (number - 1) * PAGE_SIZE };
  }

  function contextQuery(filters = state.filters, offset = state.inbox.offset) {
    const params = new URLSearchParams();
    for (const name of FILTERS) {
      const value = filters[name];
      if (value !== FILTER_DEFAULTS[name]) params.set(name, name === "status" && value === "" ? "all" : value);
    }
    const page = Math.floor(offset / PAGE_SIZE) + 1;
    if (page > 1) params.set("page", String(page));
    const query = params.toString();
    return query ? `?${query}` : "";
  }

  const inboxHash = () => `#/inbox${contextQuery()}`;
  const requestHash = (id) => `#/request/${id}${contextQuery()}`;

  // The address the page has handled, also as <body data-routed>: an address it has not
  // routed yet (its hashchange still to come) still shows what the one before it showed.
  function setRouted(hash) {
    state.routed = hash;
    document.body.dataset.routed = hash;
  }

  // Address changes the page makes itself: no hashchange, so no second route().
  function setHash(hash, { push = false } = {}) {
    if (hash !== location.hash) {
      history[push ? "pushState" : "replaceState"](history.state, "", hash);
      setRouted(location.hash);
    }
    syncLinks();
  }

  function syncLinks() {
    const inbox = inboxHash();
    for (const link of document.querySelectorAll("a.back, [data-nav='inbox']")) link.setAttribute("href", inbox);
  }

  // The address of what is shown, once the list it names was read (a page past the end
  // became the last page): only while the address still names that view. A request's
  // address is set as it opens (openRequest), not by the list a step reads before leaving it.
  function syncUrl() {
    const { path } = splitHash(location.hash);
    if (state.view === "inbox" && path === "#/inbox") setHash(inboxHash());
    else if (state.view === "request" && state.current && path === `#/request/${state.current.id}`) setHash(requestHash(state.current.id));
    else syncLinks();
  }

  // Takes the inbox filters and page from an address; a different list forgets the one read.
  function applyContext(query) {
    const { filters, offset } = parseContext(query);
    clearTimeout(searchTimer);
    for (const name of FILTERS) $(`f-${name}`).value = filters[name];
    const same = FILTERS.every((name) => filters[name] === state.filters[name]) && offset === state.inbox.offset;
    state.filters = filters;
    state.inbox.offset = offset;
    if (!same) {
      state.order = [];
      state.inbox.rows = [];
      state.inbox.selected = 0;
      state.inbox.freshFor = null;
    }
  }

  function onAddressChange() {
    if (location.hash !== state.routed) route();
  }

  async function route() {
    setRouted(location.hash);
    state.visit += 1;
    clearTimeout(searchTimer); // a search typed just before leaving the inbox is not read
    const hash = location.hash || "#/inbox";
    const { path, query } = splitHash(hash);
    const [, view, arg] = path.split("/");
    if (state.view === "request" && state.current) leaveRequest(view === "request" ? arg : null);
    if (view === "try") { setView("try"); return; }
    if (view === "model") { setView("model"); loadModelPage(); return; }
    if (!signedIn()) {
      if (view !== "login") state.after = hash;
      setView("login");
      $("login-name").value = sessionStorage.getItem(SESSION_NAME) || "";
      $("login-name").focus();
      return;
    }
    claimDrafts();
    // Signed in already: the sign-in address gives way to the inbox (replaced, not added,
    // or Back would land on it again and be sent forward each time).
    if (view === "login") { location.replace(inboxHash()); return; }
    if (view === "request") {
      // Ids are 1, 2, 3, …: anything else would only earn the API's validation message.
      if (/^[1-9]\d{0,14}$/.test(arg || "")) {
        if (state.view !== "request" || (state.current && state.current.id !== Number(arg))) {
          // Until this one is read no key or button may act on the request shown before,
          // and, coming from another view, its words must not stand under this address.
          if (state.view !== "request") $("req-body").hidden = true;
          state.current = null;
        }
        setView("request");
        // Being read (aria-busy) until openRequest shows it: what is on screen meanwhile is
        // the request before, or nothing.
        $("view-request").setAttribute("aria-busy", "true");
        applyContext(query);
        setHash(requestHash(Number(arg)));
        await openRequest(Number(arg));
        return;
      }
      setView("request");
      showNoRequest(`There is no request “${arg || ""}”: requests are numbered 1, 2, 3, …`);
      return;
    }
    applyContext(view === "inbox" ? query : "");
    setHash(inboxHash());
    setView("inbox");
    setBusy(false);
    await loadInbox();
  }

  // --- inbox ----------------------------------------------------------------------------------

  function filterQuery(filters = state.filters) {
    const params = new URLSearchParams();
    for (const name of FILTERS) {
      if (filters[name]) params.set(name, filters[name]);
    }
    return params;
  }

  // The filters as the form shows them, taken as the list's (a search box being typed in too).
  function commitFilters() {
    const filters = {};
    for (const name of FILTERS) filters[name] = $(`f-${name}`).value.trim();
    state.filters = filters;
  }

  async function fetchPage(filters, offset) {
    const params = filterQuery(filters);
    params.set("limit", String(PAGE_SIZE));
    params.set("offset", String(offset));
    const response = await api(`/v1/requests?${params}`, { raw: true });
    const rows = await response.json();
    return { rows, total: Number(response.headers.get("X-Total-Count") || rows.length) };
  }

  function setPage(offset, { rows, total }) {
    state.inbox.offset = offset;
    state.inbox.rows = rows;
    state.inbox.total = total;
    state.order = rows.map((row) => row.id);
    state.inbox.selected = Math.min(state.inbox.selected, Math.max(rows.length - 1, 0));
  }

  // Loads and shows the inbox page at state.inbox.offset; returns why it could not (null when
  // it could), so a caller outside the inbox view can say so where the reviewer is looking.
  // Only the latest of overlapping loads (a filter changed, Back pressed meanwhile) is shown:
  // an earlier answer arriving last would show a list the filters and page do not name.
  function loadInbox() {
    state.inbox.latest = readInbox(++state.inbox.loads);
    return state.inbox.latest;
  }

  async function readInbox(load) {
    const error = $("inbox-error");
    error.hidden = true;
    const filters = state.filters;
    const offset = state.inbox.offset;
    let page;
    try {
      page = await fetchPage(filters, offset);
    } catch (err) {
      if (load !== state.inbox.loads) return state.inbox.latest;
      if (state.view === "inbox" && state.inbox.shown !== contextQuery(filters, offset)) {
        // The rows on screen are another list's (other filters or page): not under these.
        state.inbox.rows = [];
        state.order = [];
        clear($("inbox-rows"));
        show($("inbox-table"), false);
        show($("inbox-empty"), false);
        $("inbox-count").textContent = "";
        $("page-info").textContent = "";
      }
      showError(error, err);
      return err;
    }
    if (load !== state.inbox.loads) return state.inbox.latest;
    if (!page.rows.length && offset > 0) {
      // Deciding the last requests of a later page empties it, and an address may name a page
      // past the end: show the last page there is.
      const last = page.total > 0 ? Math.floor((page.total - 1) / PAGE_SIZE) * PAGE_SIZE : 0;
      state.inbox.offset = last < offset ? last : Math.max(0, offset - PAGE_SIZE);
      return loadInbox();
    }
    setPage(offset, page);
    renderInbox();
    if (state.view === "inbox") syncUrl(); else syncLinks();
    return null;
  }

  function renderInbox() {
    const body = clear($("inbox-rows"));
    const { rows, total, offset } = state.inbox;
    state.inbox.shown = contextQuery();
    rows.forEach((row, i) => {
      const hide = row.blind_review && row.status === "pending";
      const title = row.title || row.text.split("\n")[0].slice(0, 120);
      const tr = el(
        "tr",
        {
          "data-id": row.id,
          "aria-selected": i === state.inbox.selected ? "true" : "false",
          onclick: () => { location.hash = requestHash(row.id); },
        },
        el("td", { class: "c-id" }, `#${row.id}`),
        el("td", { class: "c-received" }, fmtTime(row.received_at)),
        el("td", { class: "c-lang" }, row.lang),
        el(
          "td",
          { class: "snippet" },
          el("a", { href: requestHash(row.id) }, title),
          el("span", { class: "preview" }, row.title ? row.text : row.text.slice(title.length)),
        ),
        el("td", { class: "c-outcome" }, hide ? el("span", { class: "chip blind" }, "blind review") : outcomeCell(row)),
        el("td", { class: "c-labels" }, ...(hide ? [] : row.labels.map(labelChip))),
        el(
          "td",
          { class: "c-status" },
          el("span", { class: `chip status-${row.status}` }, row.status),
          state.drafts.has(row.id) ? el("span", { class: "chip draft", title: "Changes not saved yet: open the request to save or discard them" }, "unsaved draft") : null,
        ),
      );
      body.append(tr);
    });
    show($("inbox-empty"), rows.length === 0);
    show($("inbox-table"), rows.length > 0);
    $("inbox-count").textContent = `(${total})`;
    $("page-info").textContent = total ? `${offset + 1}–${offset + rows.length} of ${total}` : "";
    $("page-prev").disabled = offset === 0;
    $("page-next").disabled = offset + rows.length >= total;
  }

  function outcomeCell(row) {
    const badge = el("span", {});
    outcomeBadge(badge, row.outcome);
    const band = state.model ? state.model.uncertainty_band : 0;
    const uncertain = row.status === "pending" && row.margin < band;
    return el("span", {}, badge, uncertain ? el("span", { class: "uncertain-tag", title: `closest score is ${row.margin.toFixed(2)} from its threshold` }, " uncertain") : null);
  }

  function selectRow(index) {
    const rows = state.inbox.rows;
    if (!rows.length) return;
    state.inbox.selected = Math.max(0, Math.min(rows.length - 1, index));
    for (const tr of $("inbox-rows").children) {
      tr.setAttribute("aria-selected", tr.dataset.id === String(rows[state.inbox.selected].id) ? "true" : "false");
    }
    $("inbox-rows").children[state.inbox.selected].scrollIntoView({ block: "nearest" });
  }

  function moveSelection(step) {
    selectRow(state.inbox.selected + step);
  }

  // The next (delta 1) or previous (-1) pending row of this page after the selected one.
  function selectPending(delta) {
    const rows = state.inbox.rows;
    for (let i = state.inbox.selected + delta; i >= 0 && i < rows.length; i += delta) {
      if (rows[i].status === "pending") { selectRow(i); return; }
    }
    toast(`No pending request ${delta > 0 ? "below" : "above"} the selected one on this page.`);
  }

  // --- highlights, bars, similar ----------------------------------------------------------------

  const UNREAD = {
    frame: "not read by the model: greeting, sign-off, signature, footer, template heading or log",
    denial: "not read by the model: says the request is not about security",
  };

  // Split one field's text at every evidence boundary; each piece is a text node or a <mark>.
  // The parts the model left unread (``ignored``) are greyed.
  function renderHighlighted(node, text, field, perLabel, ignored = []) {
    clear(node);
    // The API's offsets count code points (Python's); a JS string counts UTF-16 units, so
    // after an emoji slicing it would shift every highlight. Slice the code points instead.
    const chars = Array.from(text);
    const unread = ignored.filter((i) => i.field === field && i.end > i.start);
    const spans = [];
    for (const ls of perLabel) {
      if (state.hidden.has(ls.label)) continue;
      for (const ev of ls.evidence) {
        if (ev.field !== field || ev.end <= ev.start) continue;
        spans.push({ start: Math.max(0, ev.start), end: Math.min(chars.length, ev.end), label: ls.label, weight: ev.weight });
      }
    }
    const cuts = new Set([0, chars.length]);
    for (const s of [...spans, ...unread]) { cuts.add(s.start); cuts.add(s.end); }
    const points = [...cuts].filter((x) => x >= 0 && x <= chars.length).sort((a, b) => a - b);
    for (let i = 0; i < points.length - 1; i++) {
      const a = points[i];
      const b = points[i + 1];
      const piece = chars.slice(a, b).join("");
      const over = spans.filter((s) => s.start <= a && s.end >= b);
      if (!over.length) {
        const skip = unread.find((u) => u.start <= a && u.end >= b);
        node.append(skip ? el("span", { class: "unread", title: UNREAD[skip.reason] }, piece) : document.createTextNode(piece));
        continue;
      }
      const pro = over.filter((s) => s.weight > 0).sort((x, y) => y.weight - x.weight);
      const con = over.filter((s) => s.weight < 0).sort((x, y) => x.weight - y.weight);
      const mark = el("mark", { class: "ev" }, piece);
      if (pro.length) {
        mark.classList.add("ev-for", labelClass(pro[0].label));
        mark.dataset.for = [...new Set(pro.map((s) => s.label))].join(" ");
        if (pro.length > 1 && pro[1].label !== pro[0].label) {
          mark.classList.add("ev-multi");
          mark.style.setProperty("--fill2", `var(--lab-${state.labels.indexOf(pro[1].label)}-fill, #ddd)`);
        }
      }
      if (con.length) {
        mark.classList.add("ev-against");
        mark.dataset.against = [...new Set(con.map((s) => s.label))].join(" ");
        if (pro.length) {
          mark.style.setProperty("--c2", `var(--lab-${state.labels.indexOf(con[0].label)}, #666)`);
        } else {
          mark.classList.add(labelClass(con[0].label));
        }
      }
      const why = over.map((s) => `${labelName(s.label)} ${s.weight > 0 ? "+" : "−"}${Math.abs(s.weight).toFixed(2)}`);
      mark.title = `${pro.length ? "argues for" : "argues against"}: ${why.join(", ")}`;
      node.append(mark);
    }
  }

  function renderLegend(node, rerender) {
    clear(node);
    for (const label of state.labels) {
      const on = !state.hidden.has(label);
      node.append(
        el(
          "button",
          {
            type: "button",
            class: labelClass(label),
            "aria-pressed": on ? "true" : "false",
            "aria-label": `Highlights for ${labelName(label)}`,
            "data-label": label,
            onclick: () => {
              if (state.hidden.has(label)) state.hidden.delete(label); else state.hidden.add(label);
              renderLegend(node, rerender);
              rerender();
              node.querySelector(`[data-label="${label}"]`).focus();
            },
          },
          el("span", { class: "swatch", "aria-hidden": "true" }),
          labelName(label),
        ),
      );
    }
    node.append(
      el(
        "span",
        { class: "legend-against" },
        el("span", { class: "swatch against lab-3", "aria-hidden": "true" }),
        " dashed underline: argues against that label",
      ),
    );
  }

  function renderBars(node, suggestion) {
    clear(node);
    const band = suggestion.uncertainty_band || 0;
    for (const ls of suggestion.per_label) {
      const pct = (x) => `${Math.max(0, Math.min(100, x * 100)).toFixed(1)}%`;
      const track = el(
        "div",
        {
          class: "bar-track",
          role: "meter",
          "aria-valuemin": "0",
          "aria-valuemax": "1",
          "aria-valuenow": ls.score.toFixed(2),
          "aria-label": `${labelName(ls.label)}: score ${ls.score.toFixed(2)}, threshold ${ls.threshold.toFixed(2)}`,
        },
      );
      const bandNode = el("div", { class: "bar-band" });
      bandNode.style.left = pct(ls.threshold - band);
      bandNode.style.width = pct(Math.min(1, ls.threshold + band) - Math.max(0, ls.threshold - band));
      const fill = el("div", { class: "bar-fill" });
      fill.style.width = pct(ls.score);
      const mark = el("div", { class: "bar-mark", "data-label": `threshold ${ls.threshold.toFixed(2)}`, title: "threshold" });
      mark.style.left = pct(ls.threshold);
      track.append(bandNode, fill, mark);
      node.append(
        el(
          "div",
          { class: `bar-row ${labelClass(ls.label)} ${ls.decision ? "yes" : "no"}`, "data-label": ls.label },
          el(
            "div",
            { class: "bar-name" },
            el("span", { class: "swatch", "aria-hidden": "true" }),
            labelName(ls.label),
            ls.uncertain ? el("span", { class: "uncertain-tag" }, "uncertain") : null,
          ),
          el("div", { class: "bar-value" }, `${ls.score.toFixed(2)} ${ls.decision ? "≥" : "<"} ${ls.threshold.toFixed(2)} · ${ls.decision ? "yes" : "no"}`),
          track,
        ),
      );
    }
  }

  function renderSimilar(node, similar) {
    clear(node);
    // The nearest by words first, then the same wish in the other language (concept space).
    const items = similar || [];
    if (!items.length) {
      node.append(el("li", { class: "muted" }, "No similar past requests."));
      return;
    }
    for (const item of items) {
      const labels = new Set(item.labels);
      const chips = item.labels.length ? item.labels.map(labelChip) : [el("span", { class: "chip" }, "no label")];
      const decision = el("span", {});
      outcomeBadge(decision, outcomeFor(labels));
      decision.classList.add("small");
      const score = item.similarity.toFixed(2);
      const basis = item.cross_language
        ? `same wish in the other language (concepts ${score})`
        : `similarity ${score}`;
      node.append(
        el(
          "li",
          item.cross_language ? { class: "cross-language" } : {},
          el(
            "span",
            {
              class: "sim-text",
              title: "Click (or Enter) to show all",
              role: "button",
              tabindex: "0",
              "aria-expanded": "false",
              onclick: (e) => toggleOpen(e.currentTarget),
              onkeydown: (e) => {
                if (e.key === "Enter" || e.key === " ") { e.preventDefault(); toggleOpen(e.currentTarget); }
              },
            },
            item.text,
          ),
          el(
            "span",
            { class: "sim-meta" },
            `${item.lang} · ${basis} · decided: `,
            ...chips,
            decision,
          ),
        ),
      );
    }
  }

  function toggleOpen(node) {
    const open = node.classList.toggle("open");
    node.setAttribute("aria-expanded", open ? "true" : "false");
  }

  function renderSuggestion(prefix, suggestion) {
    outcomeBadge($(`${prefix}-outcome`), suggestion.outcome);
    $(`${prefix}-rationale`).textContent = suggestion.rationale;
    const notes = [];
    if (suggestion.uncertain_labels.length) notes.push(`uncertain: ${suggestion.uncertain_labels.map(labelName).join(", ")}`);
    if (suggestion.flags.length) notes.push(`flags: ${suggestion.flags.join(", ")}`);
    notes.push(`model ${suggestion.model_version}`);
    $(`${prefix}-flags`).textContent = notes.join(" · ");
    renderBars($(`${prefix}-bars`), suggestion);
  }

  // --- request view ---------------------------------------------------------------------------

  function isBlind(request) {
    return request.blind_review && request.status === "pending";
  }

  // The request view without a request, and why: nothing on screen a key or button could act
  // on (the request shown before must not stay current under this address).
  function showNoRequest(why) {
    $("view-request").removeAttribute("aria-busy");
    state.current = null;
    $("req-body").hidden = true;
    setBusy(false);
    showError($("req-error"), why);
  }

  async function openRequest(id) {
    // The address may move on while this one is read (Back, a link, I): then its answer is
    // not shown, nor takes the focus, over what the reviewer went to.
    const visit = state.visit;
    $("req-error").hidden = true;
    if (!state.labels.length) {
      try { await loadModel(); } catch (_) { /* submitReview refuses and says why */ }
      if (visit !== state.visit) return;
    }
    // The inbox page is read again with the request (unless the step here just read it), so
    // its place is told from the list as it is now: a request decided or changed meanwhile
    // may have left it, and an old list would give it a number it no longer has.
    const listing = state.inbox.freshFor === id ? Promise.resolve(null) : loadInbox();
    state.inbox.freshFor = null;
    let request;
    try {
      request = await api(`/v1/requests/${id}`);
    } catch (err) {
      // Missing or erased: show why, and nothing a key could act on. The request shown
      // before must not stay current, or "accept" would review it under this one's address.
      await listing;
      if (err.status === 404 || err.status === 410) state.drafts.delete(id);
      if (visit !== state.visit) return;
      showNoRequest(err);
      return;
    }
    const unread = Boolean(await listing);
    if (visit !== state.visit) return;
    state.inbox.unread = unread;
    $("view-request").removeAttribute("aria-busy");
    $("req-body").hidden = false;
    state.current = request;
    setBusy(false);
    resetDecision(request);
    const draft = state.drafts.get(id);
    if (draft) {
      // Left unsaved earlier in this tab: bring it back, marked as not saved.
      state.decision = { labels: new Set(draft.labels), outcome: draft.outcome, outcomeTouched: draft.outcomeTouched };
      $("decide-comment").value = draft.comment;
      state.restored = true;
      renderDecision();
    }
    renderDraftNote();
    syncUrl();
    $("main").focus({ preventScroll: true });
    window.scrollTo(0, 0);
  }

  // The decision as the request is stored (its review, else the suggestion unless blind).
  function resetDecision(request) {
    const reviewed = request.review;
    state.decision = {
      labels: new Set(reviewed ? reviewed.labels : isBlind(request) ? [] : request.suggested_labels),
      outcome: reviewed && reviewed.outcome ? reviewed.outcome : null,
      outcomeTouched: Boolean(reviewed && reviewed.outcome),
    };
    $("decide-comment").value = reviewed && reviewed.comment ? reviewed.comment : "";
    state.restored = false;
    renderRequest();
    state.baseline = snapshot();
  }

  // --- unsaved decisions ------------------------------------------------------------------------
  //
  // Leaving a request with changes not saved (J / K, a link, Back, the inbox) keeps them as a
  // draft in this tab instead of asking first: reviewers step away on purpose too (to read an
  // earlier similar request, then come back), and a dialog on every J would break the keyboard
  // flow. A toast says the changes are not saved, the inbox marks the request, and opening it
  // again brings them back. Only closing or reloading the tab would lose drafts: the browser
  // asks first (beforeunload); signing out asks too.

  function snapshot() {
    return {
      labels: state.labels.filter((label) => state.decision.labels.has(label)),
      outcome: $("decide-outcome").value,
      outcomeTouched: state.decision.outcomeTouched,
      comment: $("decide-comment").value,
    };
  }

  function sameDecision(a, b) {
    return a.labels.join(" ") === b.labels.join(" ") && a.outcome === b.outcome && a.comment.trim() === b.comment.trim();
  }

  function unsaved() {
    if (state.view !== "request" || !state.current || !state.decision || !state.baseline) return false;
    return !sameDecision(snapshot(), state.baseline);
  }

  function renderDraftNote() {
    const dirty = unsaved();
    $("req-draft-text").textContent = state.restored && dirty
      ? "Unsaved changes from earlier in this tab, brought back: not saved yet."
      : "Unsaved changes: not saved yet.";
    show($("req-draft"), dirty);
  }

  // Called as the address moves away from the request shown (to `next`, an id, or elsewhere).
  function leaveRequest(next) {
    const id = state.current.id;
    if (!unsaved()) {
      state.drafts.delete(id);
      return;
    }
    state.drafts.set(id, snapshot());
    if (String(next) !== String(id)) toast(`Your changes to #${id} are not saved: kept as a draft in this tab. Open #${id} again to save them.`);
  }

  function discardDraft() {
    if (!state.current) return;
    state.drafts.delete(state.current.id);
    resetDecision(state.current);
    renderDraftNote();
    // The button hid itself: the focus goes to the start of the decision, not to the page.
    $("label-toggles").querySelector("button")?.focus();
  }

  function draftCount() {
    return state.drafts.size + (unsaved() && !state.drafts.has(state.current.id) ? 1 : 0);
  }

  function onBeforeUnload(event) {
    if (!draftCount()) return;
    event.preventDefault();
    event.returnValue = ""; // older browsers ask only when a value is set
  }

  function renderRequest() {
    const request = state.current;
    if (!request) return;
    const blind = isBlind(request);
    const suggestion = request.suggestion;
    $("req-h").textContent = `Request #${request.id}`;
    const meta = clear($("req-meta"));
    const parts = [
      `received ${fmtTime(request.received_at)}`,
      `language ${request.lang}`,
      request.partner ? `partner ${request.partner}` : null,
      request.customer ? `customer ${request.customer}` : null,
      request.source ? `via ${request.source}` : null,
      request.status,
    ];
    for (const part of parts) if (part) meta.append(el("span", {}, part));

    const per = blind ? [] : suggestion.per_label;
    const rerender = () => {
      const ignored = blind ? [] : suggestion.ignored || [];
      renderHighlighted($("req-title"), request.title || "", "title", per, ignored);
      renderHighlighted($("req-text"), request.text, "text", per, ignored);
    };
    show($("req-title"), Boolean(request.title));
    rerender();
    show($("req-legend"), !blind);
    if (!blind) renderLegend($("req-legend"), rerender);

    show($("req-suggestion"), !blind);
    show($("req-blind"), blind);
    show($("req-similar-box"), !blind);
    show($("btn-accept"), !blind);
    $("btn-save").className = blind ? "primary wide" : "secondary wide";
    if (!blind) {
      renderSuggestion("req", suggestion);
      renderSimilar($("req-similar"), suggestion.similar);
    }
    renderDemand(request, blind);

    const current = $("req-current-review");
    if (request.review) {
      const r = request.review;
      // The name in <bdi>: a right-to-left mark in it must not reorder the rest of the line.
      current.replaceChildren(
        "Reviewed by ",
        el("bdi", {}, r.reviewer),
        ` (${fmtTime(r.created_at)}): ${r.labels.map(labelName).join(", ") || "no label"}${r.blind ? " · blind" : ""}. Saving replaces this review; the history is kept.`,
      );
      current.hidden = false;
    } else {
      current.hidden = true;
    }
    renderDecision();

    renderPosition();
  }

  // Position in the whole filtered inbox: next / previous go on across its pages. A request
  // the inbox page does not hold (a link, an id, a request decided meanwhile) gets no number,
  // but a note, and next / previous are off: there is no list to step through from it.
  function renderPosition() {
    const request = state.current;
    const pos = state.inbox.unread ? -1 : state.order.indexOf(request.id);
    const offset = state.inbox.offset;
    const total = Math.max(state.inbox.total, state.order.length);
    const node = $("req-pos");
    node.classList.toggle("off-list", pos < 0);
    if (pos >= 0) {
      node.textContent = `${offset + pos + 1} of ${total}`;
      node.removeAttribute("title");
      state.inbox.selected = pos; // back in the inbox, this request is the selected row
    } else if (state.inbox.unread) {
      node.textContent = "Place in the inbox unknown";
      node.title = "The inbox list could not be read, so next and previous are off.";
    } else {
      node.textContent = total > state.order.length ? "Not on the current inbox page" : "Not in the current inbox list";
      node.title = "This request is not in the inbox list its filters and page show (the address names them), so next and previous are off. Go back to the inbox to move through the list.";
    }
    $("req-prev").disabled = pos < 0 || offset + pos <= 0;
    $("req-next").disabled = pos < 0 || offset + pos >= total - 1;
  }

  function renderDemand(request, blind) {
    const demand = request.demand;
    const box = $("req-demand-box");
    if (!demand || blind) { box.hidden = true; return; }
    box.hidden = false;
    const text = demand.similar_requests
      ? `${demand.similar_requests} earlier similar request(s) from ${demand.partners} partner(s) and ${demand.customers} customer(s)` +
        (demand.broad ? " – broad demand." : ".")
      : "No earlier similar requests in the inbox.";
    $("req-demand").textContent = text;
    const links = clear($("req-demand-links"));
    for (const link of request.earlier_similar || []) {
      const other = link.cross_language ? `, ${link.lang.toUpperCase()}` : "";
      links.append(el("li", {}, el("a", { href: requestHash(link.id) }, `#${link.id}`), ` (${link.similarity.toFixed(2)}${other})`));
    }
  }

  function renderDecision() {
    const request = state.current;
    const decision = state.decision;
    const blind = isBlind(request);
    const list = clear($("label-toggles"));
    state.labels.forEach((label, i) => {
      const on = decision.labels.has(label);
      const changed = !blind && on !== request.suggested_labels.includes(label);
      list.append(
        el(
          "button",
          {
            type: "button",
            class: `toggle ${labelClass(label)}`,
            "aria-pressed": on ? "true" : "false",
            "aria-keyshortcuts": String(i + 1),
            "data-label": label,
            onclick: () => toggleLabel(label),
          },
          el("span", { class: "box", "aria-hidden": "true" }),
          el("kbd", { "aria-hidden": "true" }, String(i + 1)),
          labelName(label),
          changed ? el("span", { class: "changed" }, "changed") : null,
        ),
      );
    });
    const select = $("decide-outcome");
    if (!select.options.length) {
      for (const [value, name] of Object.entries(OUTCOMES)) {
        if (value !== "needs_review") select.append(el("option", { value }, name));
      }
    }
    // The security rule the API holds reviews to: security is always a security fix, and a
    // security fix needs the label. Other outcomes are the reviewer's call.
    const security = decision.labels.has("security");
    for (const option of select.options) option.disabled = (option.value === "security_fix") !== security;
    const allowed = !select.querySelector(`option[value="${decision.outcome}"]`)?.disabled;
    if (!decision.outcomeTouched || !allowed) {
      decision.outcome = outcomeFor(decision.labels);
      decision.outcomeTouched = false;
    }
    select.value = decision.outcome;
  }

  function toggleLabel(label) {
    if (!state.current || !state.labels.includes(label)) return;
    const labels = state.decision.labels;
    if (labels.has(label)) labels.delete(label); else labels.add(label);
    const focused = document.activeElement && document.activeElement.closest("#label-toggles");
    renderDecision();
    renderDraftNote();
    // The buttons are built anew: give the focus back to the same one.
    if (focused) $("label-toggles").querySelector(`[data-label="${label}"]`).focus();
  }

  async function submitReview(accept) {
    const request = state.current;
    if (!request || state.busy) return;
    if (!state.labels.length) {
      // Without the model's labels the decision would be saved as "no label".
      showError($("req-error"), "The model's labels could not be loaded, so nothing was saved. Reload the page, then decide again.");
      return;
    }
    const blind = isBlind(request);
    if (accept && blind) return;
    const labels = accept ? request.suggested_labels : state.labels.filter((l) => state.decision.labels.has(l));
    let outcome = accept ? request.suggested_outcome : $("decide-outcome").value;
    if (outcome === "needs_review") outcome = outcomeFor(new Set(labels));
    const comment = $("decide-comment").value.trim();
    const body = {
      labels,
      outcome,
      reviewer: sessionStorage.getItem(SESSION_NAME),
      blind,
    };
    if (comment) body.comment = comment;
    // The form as sent, and the decision as it will be stored: a comment typed on or a label
    // toggled while it is saved is not in it, and must not count as saved.
    const sent = snapshot();
    const saved = { labels: state.labels.filter((l) => labels.includes(l)), outcome, outcomeTouched: true, comment };
    setBusy(true);
    // The reviewer may go elsewhere while it is saved (I, Back, a link): the answer is then
    // told there, and does not take them on to the next request.
    const visit = state.visit;
    let review;
    try {
      review = await api(`/v1/requests/${request.id}/review`, { method: "POST", body });
    } catch (err) {
      const here = visit === state.visit;
      if (err.status === 410 || err.status === 404) {
        // Erased (or gone) meanwhile: its words must not stay on screen, nor keys act on it.
        state.drafts.delete(request.id);
        if (here) {
          state.current = null;
          $("req-body").hidden = true;
        }
      }
      if (here) showError($("req-error"), err); else toast(`#${request.id} was not saved: ${err.message}`);
      setBusy(false);
      return;
    }
    // Saved: what was sent is no longer a change to keep or warn about. What was changed while
    // it was saved stays a change not saved: on screen, or as the draft left behind when the
    // reviewer went elsewhere meanwhile (leaveRequest kept the form as it was then).
    const onScreen = () => state.view === "request" && state.current !== null && state.current.id === request.id;
    const left = state.drafts.get(request.id);
    if (onScreen() || !left || sameDecision(left, sent)) state.drafts.delete(request.id);
    if (onScreen()) {
      state.baseline = sameDecision(snapshot(), sent) ? snapshot() : saved;
      state.restored = false;
      renderDraftNote();
    }
    // Stays busy until the next request is shown (openRequest) or the inbox is: a second
    // "accept" meanwhile would review this request again.
    let message = `Saved review of #${request.id}`;
    let revealed = null;
    if (blind) {
      // The API withholds a blind request's suggestion until it is reviewed: fetch it now.
      let suggested = "?";
      try {
        revealed = await api(`/v1/requests/${request.id}`);
        suggested = (revealed.suggested_labels || []).map(labelName).join(", ") || "no label";
      } catch (_) { /* the review is saved; only the comparison is missing */ }
      message += ` (blind). The model suggested: ${suggested} – ${review.labels_agreed ? "you agreed" : "you differ"}.`;
    } else {
      message += review.labels_agreed ? " (agrees with the suggestion)." : " (corrected).";
    }
    const keptNote = ` What you changed while it was being saved is not saved: kept as a draft in this tab. Open #${request.id} again to save it.`;
    let next;
    let unread = null; // why the inbox could not be read to find the next request
    if (visit === state.visit && !(onScreen() && unsaved())) {
      try { next = await nextPending(request.id); } catch (err) { unread = err; }
    }
    if (visit !== state.visit) {
      // A draft of it left now holds changes made while it was saved (see above).
      toast(state.drafts.has(request.id) ? message + keptNote : message);
      if (state.view === "inbox") loadInbox(); // the request's status and draft mark change
      return;
    }
    if (onScreen() && unsaved()) {
      // Changed while it was saved (or while the next request was looked for): the reviewer
      // stays on it, with the review as stored and those changes shown as not saved.
      await showSaved(request, revealed, visit, message, keptNote);
      return;
    }
    if (next) {
      toast(message);
      state.inbox.freshFor = next; // nextPending read the inbox page just now
      location.hash = requestHash(next);
    } else if (unread) {
      // The review is saved, but what is left to decide is not known: the inbox says why.
      toast(`${message} The inbox list could not be refreshed, so the next request was not opened: ${unread.message}`);
      location.hash = inboxHash();
    } else {
      // The next one is looked for among the requests the filters show: others may be pending.
      const narrowed = ["q", "lang", "label", "outcome"].some((name) => state.filters[name] !== FILTER_DEFAULTS[name]);
      toast(`${message} ${narrowed ? "No pending request is left among those the filters show." : "All pending requests are decided."}`);
      state.inbox.offset = 0;
      location.hash = inboxHash();
    }
  }

  // After a save that left changes made meanwhile: the request read again (its review is the
  // one just saved, a blind one shows its suggestion now), the form as the reviewer left it.
  async function showSaved(request, revealed, visit, message, keptNote) {
    let fresh = revealed;
    if (!fresh) {
      try { fresh = await api(`/v1/requests/${request.id}`); } catch (_) { /* the saved review is not shown */ }
    }
    if (visit !== state.visit || state.current !== request) {
      toast(state.drafts.has(request.id) ? message + keptNote : message); // kept by leaveRequest
      return;
    }
    if (fresh) {
      state.current = fresh;
      renderRequest();
    }
    setBusy(false);
    renderDraftNote();
    toast(`${message} What you changed while it was being saved is not saved yet: it is shown here as unsaved changes.`);
  }

  function setBusy(busy) {
    state.busy = busy;
    for (const id of ["btn-accept", "btn-save"]) $(id).disabled = busy;
  }

  // The id of the request to open after one decided, or undefined when none is pending; throws
  // when the inbox cannot be read (then what is left pending is not known).
  async function nextPending(doneId) {
    // Next pending in the inbox order after the one just decided, on the inbox page it was on
    // (read again: a decided request may have left the list, and the rest moved up), else the
    // first pending one left anywhere.
    const pos = state.order.indexOf(doneId);
    const failure = await loadInbox();
    if (failure) throw failure;
    const pending = new Set(
      state.inbox.rows.filter((row) => row.status === "pending" && row.id !== doneId).map((row) => row.id),
    );
    const still = state.order.indexOf(doneId);
    const from = still >= 0 ? still + 1 : Math.max(pos, 0);
    const here = state.order.slice(from).find((id) => pending.has(id)) ?? state.order.find((id) => pending.has(id));
    if (here !== undefined) return here;
    const params = filterQuery();
    params.set("status", "pending");
    params.set("limit", "2");
    const first = (await api(`/v1/requests?${params}`)).find((row) => row.id !== doneId);
    return first && first.id;
  }

  async function step(delta) {
    if (state.view === "inbox") { moveSelection(delta); return; }
    if (state.view !== "request" || !state.current || state.busy || state.inbox.unread) return;
    const pos = state.order.indexOf(state.current.id);
    if (pos < 0) return;
    let target = state.order[pos + delta];
    const { offset, total } = state.inbox;
    const pageAfter = delta > 0 && offset + state.order.length < total;
    if (target === undefined && (pageAfter || (delta < 0 && offset > 0))) {
      // Past the edge of the inbox page: load the neighbouring page and go on there.
      const visit = state.visit;
      const wanted = Math.max(0, offset + (delta > 0 ? PAGE_SIZE : -PAGE_SIZE));
      state.inbox.offset = wanted;
      const failure = await loadInbox();
      if (visit !== state.visit) return; // the reviewer went elsewhere meanwhile: stay there
      if (failure) {
        state.inbox.offset = offset;
        showError($("req-error"), failure);
        return;
      }
      if (state.inbox.offset === wanted) {
        target = delta > 0 ? state.order[0] : state.order[state.order.length - 1];
      } else {
        // That page is gone (its requests left the list meanwhile) and the last one was read:
        // this request is placed in it, and the step goes on only to a neighbour there.
        if (!state.current) return;
        renderPosition();
        const at = state.order.indexOf(state.current.id);
        target = at >= 0 ? state.order[at + delta] : undefined;
      }
      if (target !== undefined) {
        state.inbox.selected = state.order.indexOf(target);
        state.inbox.freshFor = target;
      }
    }
    if (target !== undefined) location.hash = requestHash(target);
  }

  // Shift+J / Shift+K: the next / previous *pending* request of the list, skipping decided
  // ones (with Status "All"), across inbox pages: where saving a decision goes, by hand.
  async function stepPending(delta) {
    if (state.view === "inbox") { selectPending(delta); return; }
    if (state.view !== "request" || !state.current || state.busy || state.inbox.unread) return;
    if (state.filters.status === "pending") { await step(delta); return; } // all of it is
    if (state.filters.status === "reviewed") {
      toast("This list shows decided requests only: choose Status “Pending” or “All” to step to pending ones.");
      return;
    }
    const current = state.current;
    let pos = state.order.indexOf(current.id);
    if (pos < 0) return;
    const filters = state.filters;
    const visit = state.visit;
    let offset = state.inbox.offset;
    let page = { rows: state.inbox.rows, total: state.inbox.total };
    for (let read = 0; ; read++) {
      for (let i = pos + delta; i >= 0 && i < page.rows.length; i += delta) {
        if (page.rows[i].status !== "pending") continue;
        const target = page.rows[i].id;
        if (read > 0) {
          // Found on a page read just now: shown, and not read again to place the request.
          setPage(offset, page);
          renderInbox();
          state.inbox.freshFor = target;
        }
        state.inbox.selected = i;
        location.hash = requestHash(target);
        return;
      }
      const more = delta > 0 ? offset + page.rows.length < page.total : offset > 0;
      const where = delta > 0 ? "after" : "before";
      if (!more) { toast(`No pending request ${where} this one in the list.`); return; }
      if (read >= PENDING_SCAN_PAGES) {
        toast(`No pending request in the ${read * PAGE_SIZE} requests ${where} this one: choose Status “Pending” to see only those.`);
        return;
      }
      offset = Math.max(0, offset + delta * PAGE_SIZE);
      try {
        page = await fetchPage(filters, offset);
      } catch (err) {
        if (visit === state.visit) showError($("req-error"), err);
        return;
      }
      if (visit !== state.visit || state.current !== current || state.filters !== filters) return; // the reviewer moved on
      pos = delta > 0 ? -1 : page.rows.length;
    }
  }

  // --- try a request --------------------------------------------------------------------------

  async function onTry(event) {
    event.preventDefault();
    const text = $("try-text").value;
    const title = $("try-title").value.trim();
    const error = $("try-error");
    error.hidden = true;
    if (!text.trim()) { showError(error, "Please enter a text."); return; }
    if (!state.labels.length) await loadModel();
    let suggestion;
    try {
      suggestion = await api("/v1/suggest", { method: "POST", body: title ? { text, title } : { text } });
    } catch (err) {
      $("try-result").hidden = true; // the previous text's result would read as this one's
      showError(error, err);
      return;
    }
    const rerender = () => {
      renderHighlighted($("try-res-title"), title, "title", suggestion.per_label, suggestion.ignored);
      renderHighlighted($("try-res-text"), text, "text", suggestion.per_label, suggestion.ignored);
    };
    show($("try-res-title"), Boolean(title));
    rerender();
    renderLegend($("try-legend"), rerender);
    renderSuggestion("try", suggestion);
    renderSimilar($("try-similar"), suggestion.similar);
    $("try-result").hidden = false;
  }

  // --- model page -----------------------------------------------------------------------------

  async function loadModel() {
    state.model = await api("/v1/model");
    state.labels = state.model.labels.length ? state.model.labels : Object.keys(LABEL_NAMES);
    fillFilterOptions();
    $("keys-labels").textContent = "";
    state.labels.forEach((label, i) => {
      $("keys-labels").append(el("kbd", {}, String(i + 1)), " ");
    });
    return state.model;
  }

  function fillFilterOptions() {
    const label = $("f-label");
    if (label.options.length <= 1) {
      for (const name of state.labels) label.append(el("option", { value: name }, labelName(name)));
    }
    const outcome = $("f-outcome");
    if (outcome.options.length <= 1) {
      for (const [value, name] of Object.entries(OUTCOMES)) outcome.append(el("option", { value }, name));
    }
  }

  async function loadModelPage() {
    const error = $("model-error");
    error.hidden = true;
    let model;
    let report;
    try {
      [model, report] = await Promise.all([loadModel(), api("/v1/model/report")]);
    } catch (err) {
      showError(error, err);
      return;
    }
    const facts = clear($("model-facts"));
    const rows = [
      ["Version", model.version || "no model loaded"],
      ["Trained", fmtTime(model.trained_at)],
      ["Loaded", fmtTime(model.loaded_at)],
      ["Registry current", model.registry_current],
      ["Uncertainty band", `± ${model.uncertainty_band}`],
      ["Blind review share", `${Math.round((state.config.blind_review_share || 0) * 100)} % of requests`],
    ];
    if (model.last_reload_error) rows.push(["Last reload refused", model.last_reload_error]);
    for (const [key, value] of rows) {
      if (value === null || value === undefined || value === "") continue;
      facts.append(el("dt", {}, key), el("dd", {}, String(value)));
    }
    const m = model.metrics || {};
    const num = (x) => (typeof x === "number" ? x.toFixed(3) : "–");
    const summary = [];
    if (m.n !== undefined) summary.push(`${m.n} evaluation requests`);
    if (m.macro_f1 !== undefined) summary.push(`macro F1 ${num(m.macro_f1)}`);
    if (m.micro_f1 !== undefined) summary.push(`micro F1 ${num(m.micro_f1)}`);
    if (m.subset_accuracy !== undefined) summary.push(`subset accuracy ${num(m.subset_accuracy)}`);
    for (const [lang, v] of Object.entries(m.per_language || {})) summary.push(`${lang}: macro F1 ${num(v.macro_f1)} (n=${v.n})`);
    $("model-summary").textContent = summary.join(" · ") || "No metrics recorded.";
    const body = clear($("model-metrics").tBodies[0]);
    for (const [label, v] of Object.entries(m.per_label || {})) {
      body.append(
        el(
          "tr",
          {},
          el("td", {}, labelChip(label)),
          el("td", {}, num(v.precision)),
          el("td", {}, num(v.recall)),
          el("td", {}, num(v.f1)),
          el("td", {}, String(v.support ?? "–")),
          el("td", {}, num((model.thresholds || {})[label])),
        ),
      );
    }
    const pictures = clear($("model-pictures"));
    const captions = { f1: "F1 per label and language", confusion: "Confusion matrix", pr: "Precision-recall curve" };
    for (const picture of report.pictures) {
      const caption = picture.label ? `${captions[picture.kind]}: ${labelName(picture.label)}` : captions[picture.kind];
      pictures.append(
        el(
          "figure",
          { class: picture.kind === "f1" ? "wide" : null },
          el("img", {
            src: `/v1/model/report/${encodeURIComponent(picture.name)}.png?v=${encodeURIComponent(report.version)}`,
            alt: caption,
            loading: "lazy",
          }),
          el("figcaption", {}, caption),
        ),
      );
    }
    if (!report.pictures.length) pictures.append(el("p", { class: "muted" }, "This version has no report pictures."));
  }

  // --- keyboard -------------------------------------------------------------------------------

  // Letters act with or without Shift and Caps Lock (the help shows them as key caps), except
  // J and K: with Shift they go to the next / previous pending request. Nothing fires while
  // a text field, list box or choice has the focus, but Ctrl+Enter saves from the comment.
  function onKey(event) {
    const target = event.target;
    const typing =
      target instanceof HTMLInputElement ||
      target instanceof HTMLTextAreaElement ||
      target instanceof HTMLSelectElement ||
      Boolean(target && target.isContentEditable);
    if (event.isComposing) return;
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && state.view === "request") {
      event.preventDefault();
      submitReview(false);
      return;
    }
    if (typing) {
      if (event.key === "Escape") target.blur();
      return;
    }
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    const inRequest = state.view === "request" && state.current;
    let handled = true;
    if (key === "j" && event.shiftKey) stepPending(1);
    else if (key === "k" && event.shiftKey) stepPending(-1);
    else if (key === "j" || (key === "ArrowRight" && inRequest) || (key === "ArrowDown" && state.view === "inbox")) step(1);
    else if (key === "k" || (key === "ArrowLeft" && inRequest) || (key === "ArrowUp" && state.view === "inbox")) step(-1);
    else if (key === "Enter" && state.view === "inbox" && state.inbox.rows.length && !(target instanceof HTMLButtonElement || target instanceof HTMLAnchorElement)) {
      location.hash = requestHash(state.inbox.rows[state.inbox.selected].id);
    } else if (key === "a" && inRequest) submitReview(true);
    else if (key === "s" && inRequest) submitReview(false);
    else if (key === "c" && inRequest) $("decide-comment").focus();
    else if (/^[1-9]$/.test(key) && inRequest && state.labels[Number(key) - 1]) toggleLabel(state.labels[Number(key) - 1]);
    else if ((key === "Escape" || key === "i") && state.view !== "login") location.hash = inboxHash();
    else if (key === "t") location.hash = "#/try";
    else if (key === "m") location.hash = "#/model";
    else handled = false;
    if (handled) event.preventDefault();
  }

  // --- start ------------------------------------------------------------------------------------

  // A filter, the sort or the page chosen: a new address, so Back goes to the list before.
  // Typing a search only rewrites the current one: Back does not step through every word.
  function refilter({ push }) {
    clearTimeout(searchTimer);
    commitFilters();
    state.inbox.offset = 0;
    state.inbox.selected = 0;
    setHash(inboxHash(), { push });
    loadInbox();
  }

  function turnPage(delta) {
    const offset = Math.max(0, state.inbox.offset + delta * PAGE_SIZE);
    if (offset === state.inbox.offset) return;
    state.inbox.offset = offset;
    state.inbox.selected = 0;
    setHash(inboxHash(), { push: true });
    loadInbox();
  }

  function onSignOut() {
    const count = draftCount();
    if (count && !window.confirm(`Sign out and lose your unsaved changes to ${count} request(s)?`)) return;
    if (state.current) state.baseline = snapshot(); // what is on screen is given up too
    state.drafts.clear();
    state.draftsOwner = null;
    show($("login-drafts"), false);
    signOut();
  }

  async function start() {
    try {
      state.config = await api("/v1/web/config");
      $("key-header").textContent = state.config.api_key_header;
    } catch (_) { /* defaults */ }
    try {
      await loadModel();
    } catch (_) {
      fillFilterOptions();
    }
    renderWho();
    // "Skip to content" moves the focus; as an address (#main) it would be routed to the inbox.
    document.querySelector("a.skip").addEventListener("click", (e) => { e.preventDefault(); $("main").focus(); });
    $("login-form").addEventListener("submit", onLogin);
    $("sign-out").addEventListener("click", onSignOut);
    $("filters").addEventListener("change", (e) => { if (e.target.id !== "f-q") refilter({ push: true }); });
    $("f-q").addEventListener("input", () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => refilter({ push: false }), 300);
    });
    $("filters").addEventListener("submit", (e) => e.preventDefault());
    $("inbox-refresh").addEventListener("click", loadInbox);
    $("page-prev").addEventListener("click", () => turnPage(-1));
    $("page-next").addEventListener("click", () => turnPage(1));
    $("req-prev").addEventListener("click", () => step(-1));
    $("req-next").addEventListener("click", () => step(1));
    $("btn-accept").addEventListener("click", () => submitReview(true));
    $("btn-save").addEventListener("click", () => submitReview(false));
    $("draft-discard").addEventListener("click", discardDraft);
    $("decide-outcome").addEventListener("change", (e) => {
      state.decision.outcome = e.target.value;
      state.decision.outcomeTouched = true;
      renderDraftNote();
    });
    $("decide-comment").addEventListener("input", renderDraftNote);
    $("try-form").addEventListener("submit", onTry);
    document.addEventListener("keydown", onKey);
    // Back / Forward between addresses the page set itself report a popstate, and a hashchange
    // too when the part after # differs; links and typed addresses a hashchange: route once.
    window.addEventListener("hashchange", onAddressChange);
    window.addEventListener("popstate", onAddressChange);
    window.addEventListener("beforeunload", onBeforeUnload);
    await route();
    document.body.dataset.ready = "true";
  }

  start();
})();

// coordhub live demo: one WebSocket to /ws plus a few calls to the hub's
// HTTP API, rendered into plain DOM. No framework, no build step, nothing
// from outside this folder.
//
// Everything that comes from the hub (or from the URL) is put on the page
// with textContent, never parsed as HTML.
//
// Reading order: settings and helpers, the token, the connection (with its
// reconnect backoff), the frames it receives, then one section per panel:
// timeline, bot rooms, reserved assets, configuration, lock inspector,
// hubs, my jobs, job queues.
'use strict';

(function () {
  // ---- settings ----------------------------------------------------------

  const BACKOFF_FIRST_MS = 500; // first retry after a drop
  const BACKOFF_MAX_MS = 10000; // doubling up to this
  const BACKOFF_JITTER = 0.2; // +-20%, so that many pages do not retry in step
  const STABLE_AFTER_MS = 5000; // a connection up this long resets the backoff
  const PING_EVERY_MS = 20000; // {"op":"ping"} keepalive
  const PONG_TIMEOUT_MS = 10000; // no pong by then: the connection is dead
  const MAX_ENTRIES = 200; // per event list
  const RESV_DEBOUNCE_MS = 250; // reserve-items bursts become one GET
  const LOCK_AUTO_MS = 2000;
  const HTTP_TIMEOUT_MS = 8000;

  const BOT_ROOMS = ['bot:7', 'bot:12', 'bot:31'];
  const OPS_ROOMS = BOT_ROOMS.concat(['ops']);
  const DEFAULT_APP = '730';
  const DEFAULT_KEYS = ['tradeDisabled', 'pricingFlags'];
  const MAX_KEYS = 20;

  // The hub's own rules (SPEC.md), checked here so that the page never sends
  // a request the hub would refuse with a 400.
  const APP_RE = /^[A-Za-z0-9_-]{1,32}$/;
  const LOCK_RE = /^[A-Za-z0-9:_.{}-]{1,200}$/;
  const KEY_RE = /^[A-Za-z0-9:_.-]{1,64}$/;

  const CLOSE_REASONS = {
    1000: 'closed',
    1001: 'hub going away',
    1006: 'connection lost',
    1008: 'too many messages',
    1009: 'message too big',
    1011: 'hub error',
    4008: 'too slow to keep up',
  };

  // ---- helpers -----------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  // el('div', 'cls', 'text'): a new element with a class and text content.
  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  function clock(d) {
    return (d || new Date()).toLocaleTimeString([], { hour12: false });
  }

  // 75400 -> "1:15", 9400 -> "9.4 s"
  function duration(ms) {
    if (ms < 0) ms = 0;
    if (ms < 10000) return (ms / 1000).toFixed(1) + ' s';
    const s = Math.floor(ms / 1000);
    if (s < 3600) return Math.floor(s / 60) + ':' + String(s % 60).padStart(2, '0');
    return Math.floor(s / 3600) + ' h ' + String(Math.floor((s % 3600) / 60)).padStart(2, '0') + ' min';
  }

  function str(v) {
    if (v === undefined || v === null) return '';
    return typeof v === 'string' ? v : JSON.stringify(v);
  }

  function short(v, max) {
    const s = str(v);
    max = max || 300;
    return s.length > max ? s.slice(0, max) + '…' : s;
  }

  function isObject(v) {
    return v !== null && typeof v === 'object' && !Array.isArray(v);
  }

  function setParam(name, value) {
    const url = new URL(location.href);
    if (value === null || value === undefined || value === '') url.searchParams.delete(name);
    else url.searchParams.set(name, value);
    history.replaceState(null, '', url);
  }

  // ---- the session: token and claims -------------------------------------

  const ui = {
    state: $('state'),
    stateDetail: $('state-detail'),
    who: $('who'),
    whoSub: $('who-sub'),
    whoRoles: $('who-roles'),
    whoExp: $('who-exp'),
    tokenForm: $('token-form'),
    tokenInput: $('token-input'),
    tokenError: $('token-error'),
    disconnect: $('disconnect'),
    timeline: $('timeline'),
    timelineEmpty: $('timeline-empty'),
    timelineCount: $('timeline-count'),
    timelineRoom: $('timeline-room'),
    opsColumn: $('ops-column'),
    opsTimeline: $('ops-timeline'),
    opsEmpty: $('ops-empty'),
    opsCount: $('ops-count'),
    rooms: $('rooms'),
  };

  const session = {
    token: '',
    claims: null,
    roles: new Set(),
  };

  function base64UrlDecode(s) {
    let b64 = s.replace(/-/g, '+').replace(/_/g, '/');
    while (b64.length % 4) b64 += '=';
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new TextDecoder().decode(bytes);
  }

  // The payload of a JWT, unverified: for display and for choosing panels
  // only. The hub verifies the token and decides what it may do.
  function decodeClaims(token) {
    const parts = token.split('.');
    if (parts.length !== 3) throw new Error('a token has three dot-separated parts');
    const claims = JSON.parse(base64UrlDecode(parts[1]));
    if (!isObject(claims)) throw new Error('its payload is not a JSON object');
    return claims;
  }

  const hasRole = (r) => session.roles.has(r);

  function tokenExpired() {
    const exp = session.claims && session.claims.exp;
    return typeof exp === 'number' && exp * 1000 <= Date.now();
  }

  function showSession() {
    const c = session.claims;
    ui.who.hidden = !c;
    if (!c) return;
    ui.whoSub.textContent = str(c.sub) || '(no sub)';
    ui.timelineRoom.textContent = 'user:' + str(c.sub);
    jobs.ui.room.textContent = 'user:' + str(c.sub);
    ui.whoRoles.replaceChildren();
    if (session.roles.size === 0) ui.whoRoles.append(el('span', 'role role-none', 'no roles'));
    for (const r of session.roles) ui.whoRoles.append(el('span', 'role', r));
    ui.whoExp.textContent =
      typeof c.exp === 'number' ? (tokenExpired() ? 'expired ' : 'valid until ') + new Date(c.exp * 1000).toLocaleString() : '';
    ui.opsColumn.hidden = !hasRole('ops');
  }

  function tokenProblem(text) {
    ui.tokenError.hidden = !text;
    ui.tokenError.textContent = text || '';
  }

  // ---- HTTP API ----------------------------------------------------------

  // One call to the hub's API with the session's token. Resolves {status,
  // ok, json}; rejects only when the hub could not be reached at all. Every
  // caller checks roles and ids first, so that the normal answers are 2xx
  // (the browser logs every 4xx to the console).
  async function api(method, path, body) {
    const headers = { Authorization: 'Bearer ' + session.token };
    const init = { method, headers, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), HTTP_TIMEOUT_MS);
    init.signal = abort.signal;
    try {
      const res = await fetch(path, init);
      let json = null;
      try {
        json = await res.json();
      } catch (e) {
        json = null;
      }
      return { status: res.status, ok: res.ok, json };
    } finally {
      clearTimeout(timer);
    }
  }

  // "403 forbidden: reservations need role service" from an error answer.
  function apiError(r) {
    const e = r.json && isObject(r.json.error) ? r.json.error : {};
    return r.status + (e.code ? ' ' + str(e.code) : '') + (e.message ? ': ' + str(e.message) : '');
  }

  // ---- connection ----------------------------------------------------------

  // `wanted` is true from Connect until Disconnect: while it is, a dropped
  // connection is retried with backoff. `everLive` tells a token the hub
  // refuses (never opened) from a hub that went away.
  const conn = {
    ws: null,
    wanted: false,
    live: false,
    everLive: false,
    attempt: 0, // failed attempts since the last stable connection
    downSince: 0, // when the last live connection dropped (0: not down)
    lastClose: '',
    retryAt: 0,
    retryTimer: 0,
    pingTimer: 0,
    pongTimer: 0,
    stableTimer: 0,
    reconnects: 0,
    // Ops sent whose answer is still due, in order: the hub answers one
    // socket's frames in order, so an `error` belongs to the oldest op that
    // can fail. {op:'join'|'leave'|'config.watch'|'ping', room?}
    pending: [],
  };

  function setState(kind, text, detail) {
    ui.state.dataset.state = kind;
    ui.state.textContent = text;
    ui.stateDetail.textContent = detail || '';
    document.body.dataset.conn = kind;
  }

  function clearConnTimers() {
    clearTimeout(conn.retryTimer);
    clearInterval(conn.pingTimer);
    clearTimeout(conn.pongTimer);
    clearTimeout(conn.stableTimer);
    conn.retryTimer = conn.pingTimer = conn.pongTimer = conn.stableTimer = 0;
    conn.retryAt = 0;
  }

  function wsUrl() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return scheme + '//' + location.host + '/ws?token=' + encodeURIComponent(session.token);
  }

  function send(obj) {
    if (!conn.live || !conn.ws || conn.ws.readyState !== WebSocket.OPEN) return false;
    conn.ws.send(JSON.stringify(obj));
    if (obj.op) conn.pending.push(obj);
    return true;
  }

  function ping() {
    if (!send({ op: 'ping' })) return;
    if (!conn.pongTimer) conn.pongTimer = setTimeout(() => dropDead('no answer to ping'), PONG_TIMEOUT_MS);
  }

  function open() {
    clearConnTimers();
    if (tokenExpired()) {
      conn.wanted = false;
      setState('error', 'token expired', 'mint a new one and paste it above');
      updateButtons();
      return;
    }
    if (conn.downSince) setState('reconnecting', 'reconnecting…', offlineDetail());
    else setState('connecting', 'connecting…');

    let ws;
    try {
      ws = new WebSocket(wsUrl());
    } catch (e) {
      conn.wanted = false;
      setState('error', 'cannot connect', e.message);
      updateButtons();
      return;
    }
    conn.ws = ws;
    ws.onopen = () => {
      if (conn.ws === ws) onOpen();
    };
    ws.onmessage = (ev) => {
      if (conn.ws === ws) onFrame(ev.data);
    };
    ws.onclose = (ev) => {
      if (conn.ws === ws) onClose(ev.code);
    };
    ws.onerror = () => {}; // always followed by onclose, which does the work
  }

  function onOpen() {
    const wasDown = conn.downSince;
    conn.live = true;
    conn.everLive = true;
    conn.pending = [];
    conn.stableTimer = setTimeout(() => {
      conn.attempt = 0;
    }, STABLE_AFTER_MS);
    conn.pingTimer = setInterval(ping, PING_EVERY_MS);
    if (wasDown) {
      const off = Date.now() - wasDown;
      conn.downSince = 0;
      conn.reconnects++;
      setState('live', 'live', 'live again since ' + clock() + ' (' + duration(off) + ' offline)');
      addSystemEntry('live again', 'reconnected after ' + duration(off) + ' offline; rooms joined and keys watched again', 'up');
    } else {
      setState('live', 'live', 'since ' + clock());
    }
    // Resynchronise: whatever was joined or watched before the drop, and
    // what may have changed while nobody was listening.
    rooms.rejoin();
    config.watch();
    resv.refresh(wasDown ? 'reconnected' : 'connected');
    locks.onLive();
    hubs.onLive();
    jobq.onLive();
  }

  // `why` overrides the text for `code` (a drop the page decided itself).
  function onClose(code, why) {
    const wasLive = conn.live;
    conn.ws = null;
    conn.live = false;
    conn.pending = [];
    clearConnTimers();
    rooms.allOut();
    jobq.down();
    if (!conn.wanted) {
      setState('idle', 'disconnected');
      return;
    }
    conn.lastClose = why || (CLOSE_REASONS[code] || 'closed') + (code && code !== 1006 ? ' (' + code + ')' : '');
    if (wasLive) {
      conn.downSince = Date.now();
      addSystemEntry('connection lost', conn.lastClose + '; reconnecting with backoff', 'down');
      // 4008: the hub dropped us for falling behind; catch up at once.
      if (code === 4008) conn.attempt = 0;
    } else if (!conn.everLive) {
      // Never got in: a hub that is not there yet, or a token it refuses
      // (a refused upgrade looks the same as a dead hub to a page).
      checkToken();
    }
    scheduleReconnect();
  }

  // The connection stopped answering: give up on it without waiting for a
  // close handshake that may never come.
  function dropDead(why) {
    const ws = conn.ws;
    if (!ws) return;
    conn.ws = null;
    try {
      ws.close();
    } catch (e) {
      /* already closing */
    }
    onClose(0, why);
  }

  function scheduleReconnect() {
    const base = Math.min(BACKOFF_FIRST_MS * Math.pow(2, conn.attempt), BACKOFF_MAX_MS);
    const delay = Math.round(base * (1 - BACKOFF_JITTER + Math.random() * 2 * BACKOFF_JITTER));
    conn.attempt++;
    conn.retryAt = Date.now() + delay;
    conn.retryTimer = setTimeout(open, delay);
    tickConnection();
  }

  function offlineDetail() {
    const parts = ['attempt ' + conn.attempt];
    if (conn.downSince) parts.push('offline ' + duration(Date.now() - conn.downSince));
    if (conn.lastClose) parts.push(conn.lastClose);
    return parts.join(' · ');
  }

  // Called by the page's clock: the countdown to the next attempt.
  function tickConnection() {
    if (!conn.retryAt || !conn.wanted) return;
    const left = Math.max(0, conn.retryAt - Date.now());
    setState('reconnecting', 'reconnecting in ' + (left / 1000).toFixed(1) + ' s', offlineDetail());
  }

  // Before the first successful connection only: ask the API whether the
  // token is the problem (401) or the hub is simply not reachable yet.
  async function checkToken() {
    const key = config.keys[0] || DEFAULT_KEYS[0];
    try {
      const r = await api('GET', '/v1/config/' + encodeURIComponent(key));
      if (r.status === 401 && conn.wanted && !conn.everLive) {
        conn.wanted = false;
        clearConnTimers();
        conn.ws = null; // an attempt started meanwhile fails unheard
        setState('error', 'token refused', 'the hub answered 401: expired, badly signed, or for another hub');
        tokenProblem('The hub refused this token. Mint a new one with: build/coordhub token --sub ID --roles service,ops');
        updateButtons();
      }
    } catch (e) {
      /* the hub is not reachable: keep retrying */
    }
  }

  function connect(token) {
    token = token.trim();
    tokenProblem('');
    if (!token) {
      tokenProblem('Paste a token first.');
      return;
    }
    let claims;
    try {
      claims = decodeClaims(token);
    } catch (e) {
      tokenProblem('That does not look like a JWT: ' + e.message);
      return;
    }
    disconnect(true);
    session.token = token;
    session.claims = claims;
    session.roles = new Set(Array.isArray(claims.roles) ? claims.roles.filter((r) => typeof r === 'string') : []);
    ui.tokenInput.value = token;
    setParam('token', token);
    if (location.hash) history.replaceState(null, '', location.pathname + location.search);
    showSession();
    rooms.reset(hasRole('ops') ? OPS_ROOMS : []);
    resv.reset();
    config.reset();
    locks.reset();
    hubs.reset();
    jobs.reset();
    jobq.reset();
    conn.wanted = true;
    conn.everLive = false;
    conn.attempt = 0;
    conn.downSince = 0;
    conn.lastClose = '';
    if (tokenExpired()) tokenProblem('This token has expired; mint a new one.');
    updateButtons();
    open();
  }

  function disconnect(quiet) {
    conn.wanted = false;
    clearConnTimers();
    const ws = conn.ws;
    conn.ws = null;
    conn.live = false;
    conn.downSince = 0;
    conn.pending = [];
    rooms.allOut();
    jobq.down();
    if (ws) ws.close(1000, 'bye');
    if (!quiet) setState('idle', 'disconnected');
    updateButtons();
  }

  function updateButtons() {
    ui.disconnect.disabled = !conn.wanted;
  }

  // ---- frames --------------------------------------------------------------

  // The oldest pending op of one of `kinds`, removed from the queue along
  // with any ping-less ops before it that succeeded silently.
  function takePending(kinds) {
    const i = conn.pending.findIndex((p) => kinds.includes(p.op));
    if (i < 0) return null;
    return conn.pending.splice(0, i + 1)[i];
  }

  function onFrame(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch (e) {
      addEntry(ui.timeline, 'error', 'error', 'a frame that is not JSON', [short(text, 200)]);
      return;
    }
    if (!isObject(msg) || typeof msg.event !== 'string') return;
    const data = msg.data;
    switch (msg.event) {
      case 'tradestate':
        return timeline.tradestate(data);
      case 'canceledtrades':
        return timeline.canceled(data);
      case 'bot-command':
        return timeline.botCommand(data);
      case 'reserve-items':
        return resv.scheduleRefresh('reserve-items');
      case 'config':
        return config.onEvent(data);
      case 'watching':
        // The hub's answer to config.watch (a hub without one is covered by
        // the ping sent after it: see onPong).
        if (takePending(['config.watch'])) config.watchAccepted();
        return;
      case 'bot':
        return opsStream.bot(data);
      case 'finishedtrades':
        return opsStream.add('finishedtrades', 'trade finished', [str(data)]);
      case 'steamDown':
        return opsStream.add('steamDown', 'Steam status', [str(data)]);
      case 'job':
        return jobs.onEvent(data);
      case 'queues':
        return jobq.onQueue(data);
      case 'queue-alert':
        return jobq.onAlert(data);
      case 'pong':
        return onPong();
      case 'joined':
        takePending(['join']);
        if (isObject(data) && data.room === QUEUES_ROOM) jobq.joined();
        else if (isObject(data)) rooms.set(str(data.room), 'in');
        return;
      case 'left':
        takePending(['leave']);
        if (isObject(data)) rooms.set(str(data.room), 'out');
        return;
      case 'error':
        return onError(isObject(data) ? data : {});
      default:
        // An event this page does not know yet: show it rather than hide it.
        return addEntry(ui.timeline, 'other', msg.event, msg.event, [short(data)]);
    }
  }

  function onPong() {
    clearTimeout(conn.pongTimer);
    conn.pongTimer = 0;
    // Everything sent before this ping that has not failed by now succeeded.
    const done = conn.pending.splice(0, conn.pending.findIndex((p) => p.op === 'ping') + 1);
    if (done.some((p) => p.op === 'config.watch')) config.watchAccepted();
  }

  function onError(d) {
    const op = takePending(['join', 'leave', 'config.watch']);
    if (op && op.op === 'config.watch') return config.watchRefused(d);
    if (op && op.op === 'join' && op.room === QUEUES_ROOM) return jobq.joinRefused(d);
    if (op && (op.op === 'join' || op.op === 'leave')) rooms.refused(op.room, op.op);
    const what = op ? op.op + (op.room ? ' ' + op.room : '') + ' refused' : 'error from the hub';
    addEntry(ui.timeline, 'error', 'error', what + ': ' + str(d.code), [str(d.message)]);
  }

  // ---- event lists ---------------------------------------------------------

  // Adds an entry at the top of `list`: time, a tag naming the kind, a title
  // and lines. A line is a string, or {text, cls}. `attrs` become data-*.
  function addEntry(list, kind, tagText, title, lines, attrs) {
    const li = el('li', 'entry kind-' + kind);
    li.dataset.kind = kind;
    if (attrs) for (const k of Object.keys(attrs)) li.dataset[k] = attrs[k];

    const now = new Date();
    const time = el('time', 'when', clock(now));
    time.dateTime = now.toISOString();

    const body = el('div', 'body');
    const head = el('div', 'title');
    if (isObject(title)) {
      // {badge, badgeCls, text}
      head.append(el('span', 'badge ' + (title.badgeCls || ''), title.badge), document.createTextNode(' ' + title.text));
    } else {
      head.textContent = title;
    }
    body.append(head);
    for (const line of lines || []) {
      const text = typeof line === 'string' ? line : line && line.text;
      if (!text) continue;
      body.append(el('div', 'line' + (line.cls ? ' ' + line.cls : ''), text));
    }

    li.append(time, el('span', 'tag', tagText), body);
    list.prepend(li);
    while (list.childElementCount > MAX_ENTRIES) list.lastElementChild.remove();
    updateCounts();
    return li;
  }

  function updateCounts() {
    const n = ui.timeline.childElementCount;
    const m = ui.opsTimeline.childElementCount;
    ui.timelineCount.textContent = n + (n === 1 ? ' event' : ' events');
    ui.opsCount.textContent = m + (m === 1 ? ' event' : ' events');
    ui.timelineEmpty.hidden = n > 0;
    ui.opsEmpty.hidden = m > 0;
  }

  function addSystemEntry(title, line, cls) {
    addEntry(ui.timeline, 'system', 'connection', title, [line], { conn: cls });
  }

  // ---- 1. the user's trade timeline ---------------------------------------

  const timeline = {
    // {steamId, token, state, msg, extra?}, as the bots publish it.
    tradestate(d) {
      if (!isObject(d)) return addEntry(ui.timeline, 'tradestate', 'trade', 'trade', [short(d)]);
      const state = str(d.state) || 'unknown';
      const lines = [];
      const bits = [];
      const extra = isObject(d.extra) ? d.extra : null;
      if (extra && extra.bot !== undefined) bits.push('bot ' + str(extra.bot));
      if (extra && extra.items !== undefined) bits.push(str(extra.items) + ' item(s)');
      if (d.token) bits.push('offer ' + short(d.token, 40));
      if (bits.length) lines.push({ text: bits.join(' · '), cls: 'meta' });
      addEntry(
        ui.timeline,
        'tradestate',
        'trade',
        { badge: state, badgeCls: 'st st-' + state.replace(/[^a-z]/gi, '').toLowerCase(), text: str(d.msg) || '(no message)' },
        lines,
        { state },
      );
    },
    // canceledtrades carries the steamId alone.
    canceled(d) {
      addEntry(ui.timeline, 'canceledtrades', 'cancelled', 'Trade cancelled', [
        { text: 'canceledtrades for ' + str(d), cls: 'meta' },
      ]);
    },
    // {botId, command, tradeHash?}: never the trade data.
    botCommand(d) {
      d = isObject(d) ? d : {};
      const lines = d.tradeHash ? [{ text: 'trade ' + str(d.tradeHash), cls: 'meta' }] : [];
      addEntry(ui.timeline, 'bot-command', 'bot command', 'Bot ' + str(d.botId) + ': ' + str(d.command), lines);
    },
  };

  $('timeline-clear').addEventListener('click', () => {
    ui.timeline.replaceChildren();
    updateCounts();
  });

  // ---- 2. bot rooms and the ops room (role ops) ---------------------------

  const opsStream = {
    add(kind, title, lines) {
      addEntry(ui.opsTimeline, kind, kind, title, lines);
    },
    // {botId, command, steamId?, tradeHash?, raw}
    bot(d) {
      d = isObject(d) ? d : {};
      const who = [d.steamId ? 'user ' + str(d.steamId) : '', d.tradeHash ? 'trade ' + str(d.tradeHash) : '']
        .filter(Boolean)
        .join(' · ');
      const lines = [];
      if (who) lines.push({ text: who, cls: 'meta' });
      if (d.raw && d.raw !== d.command) lines.push({ text: short(d.raw, 240), cls: 'raw' });
      addEntry(ui.opsTimeline, 'bot', 'bot:' + str(d.botId), str(d.command), lines);
    },
  };

  $('ops-clear').addEventListener('click', () => {
    ui.opsTimeline.replaceChildren();
    updateCounts();
  });

  // Rooms the user wants to be in survive reconnects; `state` is what the
  // hub has confirmed: out | joining | in | leaving.
  const rooms = {
    wanted: new Set(),
    state: new Map(),
    buttons: new Map(),

    build() {
      for (const room of OPS_ROOMS) {
        const b = el('button', 'room');
        b.type = 'button';
        b.dataset.room = room;
        b.addEventListener('click', () => rooms.toggle(room));
        rooms.buttons.set(room, b);
        ui.rooms.append(b);
        rooms.set(room, 'out');
      }
    },
    reset(wanted) {
      rooms.wanted = new Set(wanted);
      rooms.allOut();
    },
    allOut() {
      for (const room of OPS_ROOMS) rooms.set(room, 'out');
    },
    rejoin() {
      for (const room of rooms.wanted) {
        if (send({ op: 'join', room })) rooms.set(room, 'joining');
      }
    },
    toggle(room) {
      const st = rooms.state.get(room);
      if (st === 'in') {
        rooms.wanted.delete(room);
        if (send({ op: 'leave', room })) rooms.set(room, 'leaving');
        else rooms.set(room, 'out');
      } else if (st === 'out') {
        rooms.wanted.add(room);
        if (send({ op: 'join', room })) rooms.set(room, 'joining');
        else rooms.set(room, 'out');
      }
    },
    refused(room, op) {
      if (op === 'join') rooms.wanted.delete(room);
      rooms.set(room, op === 'join' ? 'out' : 'in');
    },
    set(room, st) {
      const b = rooms.buttons.get(room);
      if (!b) return;
      rooms.state.set(room, st);
      const wanted = rooms.wanted.has(room);
      b.dataset.state = st;
      b.setAttribute('aria-pressed', String(st === 'in'));
      b.disabled = st === 'joining' || st === 'leaving';
      b.textContent = room;
      b.title = {
        out: wanted ? 'will join when connected' : 'click to join',
        joining: 'joining…',
        in: 'joined: click to leave',
        leaving: 'leaving…',
      }[st];
    },
  };

  // ---- 3. reserved assets ---------------------------------------------------

  const resv = {
    app: DEFAULT_APP,
    items: [], // {asset, owner, expires_at_ms}
    inflight: false,
    again: '', // a refresh asked for while one was in flight
    timer: 0,
    seq: 0, // bumped on every reset/app change: late answers are dropped
    ui: {
      form: $('resv-form'),
      app: $('resv-app'),
      status: $('resv-status'),
      table: $('resv-table'),
      body: $('resv-body'),
      empty: $('resv-empty'),
      count: $('resv-count'),
    },

    allowed() {
      return hasRole('service') || hasRole('ops');
    },
    status(text, cls) {
      resv.ui.status.textContent = text;
      resv.ui.status.className = 'status' + (cls ? ' ' + cls : '');
    },
    reset() {
      resv.seq++;
      resv.items = [];
      resv.render();
      resv.ui.table.hidden = true;
      resv.ui.empty.hidden = true;
      resv.ui.count.textContent = '';
      if (!resv.allowed()) resv.status('Listing reservations needs a token with role service or ops.', 'muted');
      else resv.status('Waiting for the connection…', 'muted');
    },
    // Debounced: reserve-items can arrive in bursts (at most one a second
    // per hub, but several hubs and a manual click add up).
    scheduleRefresh(reason) {
      clearTimeout(resv.timer);
      resv.timer = setTimeout(() => resv.refresh(reason), RESV_DEBOUNCE_MS);
    },
    async refresh(reason) {
      if (!resv.allowed()) return;
      if (!APP_RE.test(resv.app)) {
        resv.status('An app id is 1-32 characters of A-Z a-z 0-9 _ -.', 'bad');
        return;
      }
      if (!conn.live) {
        resv.status('Not connected: the list will be refreshed when the connection is back.', 'muted');
        return;
      }
      if (resv.inflight) {
        resv.again = reason;
        return;
      }
      resv.inflight = true;
      const seq = resv.seq;
      const app = resv.app;
      try {
        const r = await api('GET', '/v1/reservations/' + encodeURIComponent(app));
        if (seq !== resv.seq) return;
        if (r.ok && r.json && Array.isArray(r.json.assets)) {
          resv.items = r.json.assets
            .filter(isObject)
            .slice()
            .sort((a, b) => Number(a.expires_at_ms) - Number(b.expires_at_ms));
          resv.render();
          resv.ui.table.dataset.refreshes = String(Number(resv.ui.table.dataset.refreshes || 0) + 1);
          resv.ui.table.dataset.reason = reason;
          resv.status('Updated ' + clock() + ' · ' + resv.reasonText(reason), 'ok');
        } else if (r.status === 503) {
          resv.status('The hub cannot reach Redis right now (503); retrying on the next change.', 'bad');
        } else {
          resv.status('The hub answered ' + apiError(r), 'bad');
        }
      } catch (e) {
        if (seq === resv.seq) resv.status('Could not reach the hub: ' + e.message, 'bad');
      } finally {
        resv.inflight = false;
        if (resv.again) {
          const again = resv.again;
          resv.again = '';
          resv.refresh(again);
        }
      }
    },
    reasonText(reason) {
      return (
        {
          'reserve-items': 'after a reserve-items event',
          connected: 'on connect',
          reconnected: 'after reconnecting',
          manual: 'on request',
          app: 'for app ' + resv.app,
        }[reason] || reason
      );
    },
    render() {
      const rows = resv.items.map((a) => {
        const tr = el('tr');
        tr.dataset.asset = str(a.asset);
        tr.dataset.expires = String(Number(a.expires_at_ms));
        const left = el('td', 'num left');
        tr.append(el('td', 'mono', str(a.asset)), el('td', '', str(a.owner) || '–'), left);
        return tr;
      });
      resv.ui.body.replaceChildren(...rows);
      resv.ui.table.hidden = rows.length === 0;
      resv.ui.empty.hidden = rows.length !== 0;
      resv.ui.count.textContent = rows.length + ' in app ' + resv.app;
      resv.tick();
    },
    // Countdowns, on the page's clock. An expired row stays (marked) until
    // the hub's expiry sweep publishes itemReserved and the list is re-read.
    tick() {
      const now = Date.now();
      for (const tr of resv.ui.body.children) {
        const ms = Number(tr.dataset.expires) - now;
        const td = tr.lastElementChild;
        td.textContent = ms > 0 ? duration(ms) : 'expired';
        tr.classList.toggle('soon', ms > 0 && ms < 10000);
        tr.classList.toggle('gone', ms <= 0);
      }
    },
  };

  resv.ui.form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const app = resv.ui.app.value.trim();
    const changed = app !== resv.app;
    resv.app = app;
    setParam('app', app === DEFAULT_APP ? '' : app);
    if (changed) {
      resv.seq++;
      resv.items = [];
      resv.render();
      resv.ui.empty.hidden = true;
    }
    resv.refresh(changed ? 'app' : 'manual');
  });

  // ---- 4. configuration -------------------------------------------------------

  // Values come from GET /v1/config/{key} and then from `config` events after
  // {"op":"config.watch"}. A value is replaced only by one of the same or a
  // newer version, so a GET answered late cannot undo a live update.
  const config = {
    keys: DEFAULT_KEYS.slice(),
    // null: not known yet; true: the hub took config.watch; false: it does not know it
    supported: null,
    entries: new Map(), // key -> {state, value, version, category, at, how, error}
    seq: 0,
    ui: {
      form: $('config-form'),
      keys: $('config-keys'),
      status: $('config-status'),
      list: $('config-list'),
      count: $('config-count'),
    },

    status(text, cls) {
      config.ui.status.textContent = text;
      config.ui.status.className = 'status' + (cls ? ' ' + cls : '');
    },
    reset() {
      config.seq++;
      config.supported = null;
      config.entries = new Map(config.keys.map((k) => [k, { state: 'waiting' }]));
      config.status('Waiting for the connection…', 'muted');
      config.render();
    },
    setKeys(keys) {
      config.keys = keys;
      const old = config.entries;
      config.entries = new Map(keys.map((k) => [k, old.get(k) || { state: 'waiting' }]));
      setParam('keys', keys.join(',') === DEFAULT_KEYS.join(',') ? '' : keys.join(','));
      config.render();
      config.watch();
    },
    // Sends config.watch with every key (watches add up on the hub; events
    // for keys no longer listed are ignored here), then a ping: `watching`,
    // or failing that the pong, proves the hub took it (a refusal is an
    // error, and comes before either).
    watch() {
      if (!conn.live) return;
      if (config.supported === false) return config.unavailable();
      if (config.keys.length === 0) {
        config.status('No keys watched.', 'muted');
        return;
      }
      if (send({ op: 'config.watch', keys: config.keys })) {
        config.status('Watching ' + config.keys.length + (config.keys.length === 1 ? ' key…' : ' keys…'), 'muted');
        ping();
      }
    },
    watchAccepted() {
      config.supported = true;
      config.fetchAll();
    },
    watchRefused(d) {
      if (d.code === 'unknown_op' || d.code === 'unavailable') {
        config.supported = false;
        config.unavailable(d.code === 'unavailable' ? str(d.message) : '');
      } else {
        config.status('The hub refused config.watch: ' + str(d.code) + (d.message ? ': ' + str(d.message) : ''), 'bad');
      }
    },
    unavailable(why) {
      for (const e of config.entries.values()) e.state = 'unavailable';
      config.status(
        'Not available: ' + (why || 'this hub does not serve configuration yet (config.watch is an unknown op)') + '.',
        'muted',
      );
      config.ui.list.dataset.available = 'false';
      config.render();
    },
    async fetchAll() {
      const seq = ++config.seq;
      const keys = config.keys.slice();
      await Promise.all(keys.map((k) => config.fetchOne(k, seq)));
      if (seq !== config.seq) return;
      config.ui.list.dataset.available = String(config.supported !== false);
      if (config.supported !== false) config.status('Live: changes arrive as config events. Read ' + clock() + '.', 'ok');
    },
    async fetchOne(key, seq) {
      let r;
      try {
        r = await api('GET', '/v1/config/' + encodeURIComponent(key));
      } catch (e) {
        r = null;
      }
      const e = config.entries.get(key);
      if (seq !== config.seq || !e) return;
      if (r && r.ok && isObject(r.json)) {
        const v = r.json;
        if (e.version === undefined || Number(v.version) > Number(e.version)) {
          Object.assign(e, { state: 'ok', value: v.value, version: v.version, category: v.category, at: new Date(), how: 'read' });
          e.stale = v.stale === true;
        } else if (Number(v.version) === Number(e.version)) {
          e.category = v.category; // a config event does not carry it
          e.stale = v.stale === true;
        }
      } else if (r && r.status === 404) {
        const err = r.json && isObject(r.json.error) ? r.json.error : {};
        if (/route/i.test(str(err.message))) {
          config.supported = false;
          return config.unavailable();
        }
        if (e.state !== 'ok') Object.assign(e, { state: 'absent' });
      } else {
        Object.assign(e, { state: 'error', error: r ? apiError(r) : 'the hub could not be reached' });
      }
      config.renderOne(key);
    },
    // {key, value, version}
    onEvent(d) {
      if (!isObject(d)) return;
      const key = str(d.key);
      const e = config.entries.get(key);
      if (!e) return; // a key we no longer watch
      if (e.version !== undefined && Number(d.version) < Number(e.version)) return;
      Object.assign(e, { state: 'ok', value: d.value, version: d.version, at: new Date(), how: 'changed', stale: false });
      config.renderOne(key, true);
    },
    render() {
      const items = config.keys.map((k) => {
        const li = el('li', 'config-item');
        li.dataset.key = k;
        return li;
      });
      config.ui.list.replaceChildren(...items);
      config.ui.count.textContent = config.keys.length ? config.keys.length + ' watched' : '';
      for (const k of config.keys) config.renderOne(k);
    },
    renderOne(key, flash) {
      const li = [...config.ui.list.children].find((x) => x.dataset.key === key);
      const e = config.entries.get(key);
      if (!li || !e) return;
      li.dataset.state = e.state;
      const head = el('div', 'config-head');
      head.append(el('code', 'config-key', key));
      if (e.category) head.append(el('span', 'pill pill-soft', str(e.category)));
      if (e.version !== undefined) head.append(el('span', 'config-version', 'v' + str(e.version)));
      if (e.stale) head.append(el('span', 'pill pill-warn', 'stale'));
      const parts = [head];
      if (e.state === 'ok') {
        let text = JSON.stringify(e.value, null, 2);
        if (text === undefined) text = 'null';
        parts.push(el('pre', 'config-value', text.length > 2000 ? text.slice(0, 2000) + '\n…' : text));
        parts.push(el('div', 'config-when', (e.how === 'changed' ? 'changed live at ' : 'read at ') + clock(e.at)));
      } else {
        const msg = {
          waiting: 'waiting…',
          absent: 'not set (404)',
          unavailable: 'not available',
          error: 'error: ' + str(e.error),
        }[e.state];
        parts.push(el('div', 'config-missing', msg));
      }
      li.replaceChildren(...parts);
      if (flash) {
        li.classList.remove('flash');
        void li.offsetWidth; // restart the animation
        li.classList.add('flash');
      }
    },
  };

  config.ui.form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const keys = [...new Set(config.ui.keys.value.split(/[\s,]+/).filter(Boolean))];
    const bad = keys.find((k) => !KEY_RE.test(k));
    if (bad !== undefined) {
      config.status('"' + short(bad, 60) + '" is not a key: 1-64 letters, digits and : _ . -', 'bad');
      return;
    }
    if (keys.length > MAX_KEYS) {
      config.status('At most ' + MAX_KEYS + ' keys.', 'bad');
      return;
    }
    config.ui.keys.value = keys.join(', ');
    config.setKeys(keys);
  });

  // ---- 5. lock inspector (role ops or service) -------------------------------

  const locks = {
    name: '',
    shown: null, // last answer {name, held, ttl_ms, fence} and when it came
    timer: 0,
    seq: 0,
    ui: {
      form: $('lock-form'),
      name: $('lock-name'),
      auto: $('lock-auto'),
      result: $('lock-result'),
      resultName: $('lock-result-name'),
      held: $('lock-held'),
      ttl: $('lock-ttl'),
      fence: $('lock-fence'),
      checked: $('lock-checked'),
      status: $('lock-status'),
    },

    status(text, cls) {
      locks.ui.status.textContent = text;
      locks.ui.status.className = 'status' + (cls ? ' ' + cls : '');
    },
    reset() {
      locks.seq++;
      locks.shown = null;
      locks.ui.result.hidden = true;
      locks.status('Type a lock name (the Redis key itself) and inspect it.', 'muted');
      locks.arm();
    },
    async inspect() {
      const name = locks.ui.name.value.trim();
      if (!LOCK_RE.test(name) || name.startsWith('coordhub:')) {
        locks.status('A lock name is 1-200 characters of A-Z a-z 0-9 : _ . - { } and does not start with coordhub:.', 'bad');
        return;
      }
      if (!hasRole('ops') && !hasRole('service')) {
        locks.status('Inspecting locks needs role ops or service.', 'muted');
        return;
      }
      if (!conn.live) {
        locks.status('Not connected.', 'muted');
        return;
      }
      locks.name = name;
      setParam('lock', name === 'lockTrade:demo' ? '' : name);
      const seq = ++locks.seq;
      try {
        const r = await api('GET', '/v1/locks/' + encodeURIComponent(name));
        if (seq !== locks.seq) return;
        if (r.ok && isObject(r.json)) {
          locks.shown = { answer: r.json, at: Date.now() };
          locks.render();
          locks.status('');
        } else {
          locks.status('The hub answered ' + apiError(r), 'bad');
        }
      } catch (e) {
        if (seq === locks.seq) locks.status('Could not reach the hub: ' + e.message, 'bad');
      }
    },
    // On every (re)connection: show the lock in the name field, so that the
    // panel is not empty, and after a drop re-read what was shown.
    onLive() {
      if (hasRole('ops') || hasRole('service')) locks.inspect();
    },
    render() {
      const s = locks.shown;
      if (!s) return;
      const a = s.answer;
      locks.ui.result.hidden = false;
      locks.ui.result.dataset.held = String(a.held === true);
      locks.ui.resultName.textContent = str(a.name) || locks.name;
      locks.ui.held.textContent = a.held ? 'held' : 'free';
      locks.ui.held.className = 'pill ' + (a.held ? 'pill-held' : 'pill-free');
      locks.ui.fence.textContent =
        a.fence === null || a.fence === undefined ? 'never taken through the hub' : str(a.fence);
      locks.ui.checked.textContent = clock(new Date(s.at));
      locks.tick();
    },
    tick() {
      const s = locks.shown;
      if (!s) return;
      const a = s.answer;
      if (!a.held) locks.ui.ttl.textContent = '–';
      else if (typeof a.ttl_ms !== 'number' || a.ttl_ms < 0) locks.ui.ttl.textContent = 'never (no expiry)';
      else {
        const left = a.ttl_ms - (Date.now() - s.at);
        locks.ui.ttl.textContent = left > 0 ? duration(left) : 'expired (refresh)';
      }
    },
    arm() {
      clearInterval(locks.timer);
      locks.timer = 0;
      if (locks.ui.auto.checked) locks.timer = setInterval(() => conn.live && locks.inspect(), LOCK_AUTO_MS);
    },
  };

  locks.ui.form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    locks.inspect();
  });
  locks.ui.auto.addEventListener('change', () => {
    locks.arm();
    if (locks.ui.auto.checked) locks.inspect();
  });

  // ---- 6. the hubs of this Redis (role ops): GET /v1/hubs every 2 s --------

  const HUBS_POLL_MS = 2000;
  const hubs = {
    timer: 0,
    seq: 0,
    ui: { list: $('hubs-list'), count: $('hubs-count'), status: $('hubs-status') },

    status(text, cls) {
      hubs.ui.status.textContent = text;
      hubs.ui.status.className = 'status' + (cls ? ' ' + cls : '');
    },
    async poll() {
      if (!conn.live || !hasRole('ops')) return;
      const seq = ++hubs.seq;
      try {
        const r = await api('GET', '/v1/hubs');
        if (seq !== hubs.seq) return;
        if (r.ok && isObject(r.json) && Array.isArray(r.json.hubs)) {
          hubs.render(r.json.hubs);
          hubs.status('');
        } else {
          hubs.status('The hub answered ' + apiError(r), 'bad');
        }
      } catch (e) {
        if (seq === hubs.seq) hubs.status('Could not reach the hub: ' + e.message, 'bad');
      }
    },
    render(list) {
      const rows = list
        .filter(isObject)
        .sort((a, b) => str(a.addr).localeCompare(str(b.addr)))
        .map((h) => {
          const c = isObject(h.connections) ? h.connections : {};
          const r = isObject(h.redis) ? h.redis : {};
          const li = el('li', 'hub');
          li.dataset.addr = str(h.addr);
          li.append(
            el('code', '', str(h.addr)),
            el('span', 'faint', ' v' + str(h.version) + ', redis ' + str(r.addr) + ' (' + str(r.role) + ')'),
            el('div', '', (c.native | 0) + ' native, ' + (c.socketio | 0) + ' Socket.IO, ' + (c.polling | 0) + ' polling' +
              (typeof h.seen_ms === 'number' ? '; seen ' + duration(Math.max(0, Date.now() - h.seen_ms)) + ' ago' : '')),
          );
          return li;
        });
      hubs.ui.list.replaceChildren(...rows);
      hubs.ui.count.textContent = rows.length + (rows.length === 1 ? ' hub' : ' hubs');
    },
    // On every (re)connection of an ops token: read now, then every 2 s.
    onLive() {
      clearInterval(hubs.timer);
      hubs.timer = 0;
      if (!hasRole('ops')) return;
      hubs.poll();
      hubs.timer = setInterval(hubs.poll, HUBS_POLL_MS);
    },
    reset() {
      clearInterval(hubs.timer);
      hubs.timer = 0;
      hubs.seq++;
      hubs.ui.list.replaceChildren();
      hubs.ui.count.textContent = '';
      hubs.status('The hubs of this Redis appear here, with their connections.', 'muted');
    },
  };

  // ---- 7. my jobs: `job` events in the user's own room ---------------------

  // One row per (queue, id), newest first, updated in place as the job goes
  // active -> progress -> completed | failed (a retried job goes active
  // again). The hub sends these only for jobs whose data names this user;
  // there is nothing to re-read after a reconnect, so rows stay until the
  // token changes or the list is cleared.
  const MAX_JOBS = 50;
  const JOB_STATES = ['active', 'progress', 'completed', 'failed'];
  const jobs = {
    rows: new Map(), // "queue\u0000id" -> {tr, job}
    ui: {
      table: $('jobs-table'),
      body: $('jobs-body'),
      empty: $('jobs-empty'),
      count: $('jobs-count'),
      room: $('jobs-room'),
    },

    reset() {
      jobs.rows = new Map();
      jobs.ui.body.replaceChildren();
      jobs.counts();
    },
    counts() {
      const n = jobs.rows.size;
      const running = [...jobs.rows.values()].filter((r) => r.job.state === 'active' || r.job.state === 'progress').length;
      jobs.ui.table.hidden = n === 0;
      jobs.ui.empty.hidden = n !== 0;
      jobs.ui.count.textContent = n ? n + (n === 1 ? ' job' : ' jobs') + (running ? ', ' + running + ' running' : '') : '';
    },
    // {queue, id, name, state, progress?, result?, reason?, truncated?}
    onEvent(d) {
      if (!isObject(d) || !JOB_STATES.includes(d.state)) return addEntry(ui.timeline, 'other', 'job', 'job', [short(d)]);
      const key = str(d.queue) + '\u0000' + str(d.id);
      let row = jobs.rows.get(key);
      if (!row) {
        const tr = el('tr');
        tr.dataset.queue = str(d.queue);
        tr.dataset.id = str(d.id);
        row = { tr, job: { queue: str(d.queue), id: str(d.id) } };
        jobs.rows.set(key, row);
        jobs.ui.body.prepend(tr);
        jobs.trim();
      }
      const j = row.job;
      j.state = d.state;
      j.at = new Date();
      if (d.name !== undefined && d.name !== null) j.name = str(d.name);
      if (d.state === 'active') {
        delete j.result;
        delete j.reason;
        delete j.truncated;
      }
      if ('progress' in d) j.progress = d.progress;
      if ('result' in d) j.result = d.result;
      if ('reason' in d) j.reason = d.reason;
      if (d.state === 'completed' || d.state === 'failed') j.truncated = d.truncated === true;
      jobs.render(row);
      jobs.counts();
    },
    // Beyond MAX_JOBS rows, the oldest finished ones go first.
    trim() {
      while (jobs.rows.size > MAX_JOBS) {
        const all = [...jobs.rows.entries()];
        const done = all.filter(([, r]) => r.job.state === 'completed' || r.job.state === 'failed');
        const [key, r] = (done.length ? done : all).reduce((a, b) =>
          a[1].tr.compareDocumentPosition(b[1].tr) & Node.DOCUMENT_POSITION_FOLLOWING ? b : a,
        );
        r.tr.remove();
        jobs.rows.delete(key);
      }
    },
    render(row) {
      const j = row.job;
      const tr = row.tr;
      tr.dataset.state = j.state;

      const what = el('td', 'job');
      const name = el('div', 'job-name', j.name || '(no name)');
      const id = el('div', 'job-id', '#' + j.id + ' · ' + j.queue);
      name.title = name.textContent;
      id.title = id.textContent;
      what.append(name, id);

      const state = el('td');
      state.append(el('span', 'badge js-' + j.state, j.state));
      state.append(el('div', 'job-when', clock(j.at)));

      // A number is a percentage (BullMQ and Bull report 0-100); anything
      // else a job reports is shown as it is. A completed job is full.
      const prog = el('td', 'job-progress');
      const p = j.progress;
      const pct = j.state === 'completed' ? 100 : typeof p === 'number' && isFinite(p) ? Math.max(0, Math.min(100, p)) : null;
      if (pct !== null) {
        const bar = el('progress');
        bar.max = 100;
        bar.value = pct;
        prog.append(bar, el('span', 'job-pct', Math.round(pct) + '%'));
        prog.dataset.progress = String(pct);
      } else if (p !== undefined && p !== null) {
        prog.append(el('span', 'job-pct', short(p, 40)));
        prog.dataset.progress = short(p, 40);
      } else {
        prog.append(el('span', 'faint', '–'));
        prog.dataset.progress = '';
      }

      const out = el('td', 'job-result');
      if (j.state === 'failed') {
        out.classList.add('bad');
        out.textContent = short(j.reason, 120) || 'failed';
      } else if (j.state === 'completed') {
        out.textContent = j.result === undefined || j.result === null ? '–' : short(j.result, 120);
      } else {
        out.append(el('span', 'faint', 'running…'));
      }
      if (j.truncated) out.append(el('span', 'faint', ' (cut at 4 KiB)'));
      if (j.result !== undefined || j.reason !== undefined) out.title = short(j.state === 'failed' ? j.reason : j.result, 2000);

      tr.replaceChildren(what, state, prog, out);
      tr.classList.remove('flash');
      void tr.offsetWidth; // restart the animation
      tr.classList.add('flash');
    },
  };

  $('jobs-clear').addEventListener('click', () => jobs.reset());

  // ---- 8. job queues (role ops): GET /v1/queues, then the room queues ------

  // The list is read when the connection is (re)established, after joining
  // the room `queues`; from then on a `queues` event replaces one queue's
  // row and a `queue-alert` event adds or removes a firing alert. A row is
  // replaced only by one polled at the same time or later, so a GET
  // answered late cannot undo a live update.
  const QUEUES_ROOM = 'queues';
  const jobq = {
    rows: new Map(), // label -> {tr, q}
    alerts: new Map(), // "queue\u0000alert" -> {queue, alert, measure, value, bound, at}
    room: 'out', // out | joining | in | refused
    available: null, // null: not known yet; false: no /v1/queues on this hub
    pollSeconds: null,
    seq: 0,
    ui: {
      table: $('queues-table'),
      body: $('queues-body'),
      empty: $('queues-empty'),
      count: $('queues-count'),
      status: $('queues-status'),
      alerts: $('queues-alerts'),
    },

    status(text, cls) {
      jobq.ui.status.textContent = text;
      jobq.ui.status.className = 'status' + (cls ? ' ' + cls : '');
    },
    reset() {
      jobq.seq++;
      jobq.rows = new Map();
      jobq.alerts = new Map();
      jobq.room = 'out';
      jobq.available = null;
      jobq.pollSeconds = null;
      jobq.ui.body.replaceChildren();
      jobq.ui.table.hidden = true;
      jobq.ui.empty.hidden = true;
      jobq.ui.count.textContent = '';
      jobq.ui.table.dataset.available = '';
      jobq.renderAlerts();
      if (!hasRole('ops')) jobq.status('The job queues need a token with role ops.', 'muted');
      else jobq.status('Waiting for the connection…', 'muted');
    },
    // On every (re)connection of an ops token: join the room first, then
    // read the list, so that no change falls between the two.
    onLive() {
      if (!hasRole('ops')) return;
      if (jobq.available === false) return jobq.unavailable();
      if (send({ op: 'join', room: QUEUES_ROOM })) jobq.room = 'joining';
      jobq.fetch();
    },
    down() {
      if (jobq.room !== 'refused') jobq.room = 'out';
      if (hasRole('ops') && jobq.available !== false) jobq.status('Not connected: the list is read again when the connection is back.', 'muted');
    },
    joined() {
      jobq.room = 'in';
      jobq.liveStatus();
    },
    joinRefused(d) {
      jobq.room = 'refused';
      if (jobq.available === false) return; // an older hub: "not available" says it all
      jobq.status('The hub refused to join the room queues: ' + str(d.code) + (d.message ? ': ' + str(d.message) : '') + '.', 'bad');
    },
    unavailable(why) {
      jobq.available = false;
      jobq.ui.table.hidden = true;
      jobq.ui.empty.hidden = true;
      jobq.ui.table.dataset.available = 'false';
      jobq.ui.count.textContent = '';
      jobq.status('Not available: ' + (why || 'this hub does not serve job queues (GET /v1/queues is not a route)') + '.', 'muted');
    },
    async fetch() {
      if (!conn.live || !hasRole('ops')) return;
      const seq = ++jobq.seq;
      try {
        const r = await api('GET', '/v1/queues');
        if (seq !== jobq.seq) return;
        if (r.ok && isObject(r.json) && Array.isArray(r.json.queues)) {
          jobq.available = true;
          jobq.ui.table.dataset.available = 'true';
          jobq.pollSeconds = typeof r.json.pollSeconds === 'number' ? r.json.pollSeconds : null;
          const seen = new Set();
          for (const q of r.json.queues.filter(isObject)) {
            seen.add(str(q.queue));
            jobq.put(q);
          }
          for (const [label, row] of jobq.rows) {
            if (!seen.has(label)) {
              row.tr.remove();
              jobq.rows.delete(label);
            }
          }
          for (const [k, a] of jobq.alerts) if (!seen.has(a.queue)) jobq.alerts.delete(k);
          jobq.renderAlerts();
          jobq.counts();
          jobq.liveStatus();
        } else if (r.status === 404) {
          jobq.unavailable();
        } else {
          jobq.status('The hub answered ' + apiError(r), 'bad');
        }
      } catch (e) {
        if (seq === jobq.seq) jobq.status('Could not reach the hub: ' + e.message, 'bad');
      }
    },
    liveStatus() {
      if (jobq.available !== true) return;
      if (jobq.rows.size === 0) {
        jobq.status('');
        return;
      }
      const poll = jobq.pollSeconds !== null ? 'counts read every ' + jobq.pollSeconds + ' s' : 'counts read by the hub';
      if (jobq.room === 'in') jobq.status('Live: ' + poll + ', changes arrive as queues events. Read ' + clock() + '.', 'ok');
      else if (jobq.room === 'joining') jobq.status('Read ' + clock() + '; joining the room queues…', 'muted');
      else if (jobq.room !== 'refused') jobq.status('Read ' + clock() + '; not live (not in the room queues).', 'muted');
    },
    counts() {
      const n = jobq.rows.size;
      jobq.ui.table.hidden = n === 0;
      jobq.ui.empty.hidden = n !== 0 || jobq.available !== true;
      jobq.ui.count.textContent = n ? n + (n === 1 ? ' queue' : ' queues') : '';
    },
    // One queue's object (GET /v1/queues or a `queues` event).
    put(q) {
      const label = str(q.queue);
      if (!label) return;
      let row = jobq.rows.get(label);
      if (row && typeof row.q.polledAt === 'number' && typeof q.polledAt === 'number' && q.polledAt < row.q.polledAt) return;
      const fresh = !row;
      if (!row) {
        row = { tr: el('tr'), q };
        row.tr.dataset.queue = label;
        jobq.rows.set(label, row);
        jobq.ui.body.append(row.tr);
      }
      row.q = q;
      // The queue's firing rules: its alerts as the hub has them now.
      const firing = new Set(Array.isArray(q.alerts) ? q.alerts.map(str) : []);
      for (const [k, a] of jobq.alerts) if (a.queue === label && !firing.has(a.alert)) jobq.alerts.delete(k);
      for (const text of firing) {
        const k = label + '\u0000' + text;
        if (!jobq.alerts.has(k)) jobq.alerts.set(k, { queue: label, alert: text, at: new Date() });
      }
      jobq.renderRow(row, !fresh);
    },
    onQueue(d) {
      if (!isObject(d) || jobq.available === false) return;
      jobq.put(d);
      jobq.renderAlerts();
      jobq.counts();
    },
    // {queue, alert, measure, value, bound, state: firing | cleared}
    onAlert(d) {
      if (!isObject(d)) return;
      const k = str(d.queue) + '\u0000' + str(d.alert);
      if (d.state === 'cleared') jobq.alerts.delete(k);
      else jobq.alerts.set(k, { queue: str(d.queue), alert: str(d.alert), measure: d.measure, value: d.value, bound: d.bound, at: new Date() });
      jobq.renderAlerts();
    },
    renderAlerts() {
      const items = [...jobq.alerts.values()].map((a) => {
        const li = el('li', 'alert');
        li.dataset.queue = a.queue;
        li.dataset.alert = a.alert;
        li.append(el('span', 'pill pill-held', 'firing'), el('code', '', a.queue), document.createTextNode(' ' + a.alert));
        const bits = [];
        if (typeof a.value === 'number') bits.push(str(a.measure) + ' ' + a.value);
        bits.push('since ' + clock(a.at));
        li.append(el('span', 'faint', ' · ' + bits.join(' · ')));
        return li;
      });
      jobq.ui.alerts.replaceChildren(...items);
      jobq.ui.alerts.hidden = items.length === 0;
    },
    renderRow(row, flash) {
      const q = row.q;
      const c = isObject(q.counts) ? q.counts : {};
      const stream = q.kind === 'stream';
      const n = (v) => (typeof v === 'number' ? String(v) : '–');
      const tr = row.tr;
      tr.dataset.kind = str(q.kind);
      tr.dataset.status = str(q.status);

      const name = el('td', 'queue');
      const head = el('div', 'queue-head');
      head.append(el('code', 'queue-name', str(q.queue)));
      if (q.status !== 'ok') head.append(el('span', 'pill ' + (q.status === 'error' ? 'pill-held' : 'pill-soft'), str(q.status)));
      if (Array.isArray(q.alerts) && q.alerts.length) head.append(el('span', 'pill pill-warn', q.alerts.length + ' alert' + (q.alerts.length === 1 ? '' : 's')));
      // What the four count columns do not show, on a line of its own.
      const bits = [str(q.kind) + (stream ? ' ' + str(q.group) : '')];
      for (const m of stream ? ['length', 'lag', 'consumers'] : ['paused', 'prioritized', 'waiting-children']) {
        if (typeof c[m] === 'number' && (stream || c[m] > 0)) bits.push(m + ' ' + c[m]);
      }
      if (typeof q.oldestWaitingSeconds === 'number' && c.waiting > 0) bits.push('oldest waiting ' + duration(q.oldestWaitingSeconds * 1000));
      if (typeof q.stuck === 'number' && q.stuck > 0) bits.push(q.stuck + ' stuck (> ' + q.stuckAfterSeconds + ' s)');
      if (typeof q.stalled === 'number' && q.stalled > 0) bits.push(q.stalled + ' stalled');
      if (q.error) bits.push(short(q.error, 80));
      name.append(head, el('div', 'queue-meta', bits.join(' · ')));

      const cell = (measure, v) => {
        const td = el('td', 'num', n(v));
        td.dataset.count = measure;
        return td;
      };
      tr.replaceChildren(
        name,
        cell('waiting', c.waiting),
        cell('active', stream ? c.pending : c.active),
        cell('delayed', stream ? null : c.delayed),
        cell('completed', stream ? null : c.completed),
        cell('failed', stream ? c['dead-letters'] : c.failed),
      );
      tr.title = 'polled ' + (typeof q.polledAt === 'number' ? clock(new Date(q.polledAt)) : 'not yet');
      if (flash) {
        tr.classList.remove('flash');
        void tr.offsetWidth; // restart the animation
        tr.classList.add('flash');
      }
    },
  };

  // ---- start ---------------------------------------------------------------

  ui.tokenForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    connect(ui.tokenInput.value);
  });
  ui.disconnect.addEventListener('click', () => disconnect(false));

  // One clock for every countdown on the page.
  setInterval(() => {
    tickConnection();
    resv.tick();
    locks.tick();
  }, 250);

  rooms.build();
  updateCounts();

  const params = new URLSearchParams(location.search);
  const hash = new URLSearchParams(location.hash.replace(/^#/, ''));
  if (params.get('app')) resv.ui.app.value = resv.app = params.get('app').trim();
  if (params.get('lock')) locks.ui.name.value = params.get('lock').trim();
  if (params.get('keys')) {
    const keys = [...new Set(params.get('keys').split(/[\s,]+/).filter((k) => KEY_RE.test(k)))].slice(0, MAX_KEYS);
    config.keys = keys;
  }
  config.ui.keys.value = config.keys.join(', ');
  config.reset();
  resv.reset();
  locks.reset();
  hubs.reset();
  jobs.reset();
  jobq.reset();

  const initial = params.get('token') || hash.get('token');
  if (initial) connect(initial);
  else {
    setState('idle', 'not connected', 'paste a token to start');
    ui.tokenInput.focus();
  }
})();

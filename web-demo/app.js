// coordhub demo page: connects to /ws with a token and shows what arrives.
// Plain browser JavaScript, no build step. Everything received is rendered
// with textContent, never as HTML.
'use strict';

(function () {
  const MAX_ENTRIES = 200;
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 10000;
  const PING_EVERY_MS = 25000;
  const BOT_ROOMS = ['bot:7', 'bot:12', 'bot:31'];
  const OPS_ROOMS = BOT_ROOMS.concat(['ops']);

  const $ = (id) => document.getElementById(id);
  const ui = {
    state: $('state'),
    who: $('who'),
    whoSub: $('who-sub'),
    whoRoles: $('who-roles'),
    whoExp: $('who-exp'),
    tokenInput: $('token-input'),
    tokenError: $('token-error'),
    connect: $('connect'),
    disconnect: $('disconnect'),
    timeline: $('timeline'),
    timelineEmpty: $('timeline-empty'),
    timelineCount: $('timeline-count'),
    timelineClear: $('timeline-clear'),
    opsPanel: $('ops-panel'),
    opsTimeline: $('ops-timeline'),
    opsEmpty: $('ops-empty'),
    opsCount: $('ops-count'),
    opsClear: $('ops-clear'),
    rooms: $('rooms'),
  };

  // Connection state. `wanted` is false once the user disconnects on purpose.
  const conn = {
    token: '',
    claims: null,
    ws: null,
    wanted: false,
    backoff: BACKOFF_MIN_MS,
    retryTimer: 0,
    countdownTimer: 0,
    pingTimer: 0,
  };
  // room -> 'out' | 'joining' | 'in' | 'leaving'; kept across reconnects so
  // that joined rooms are joined again.
  const rooms = new Map(OPS_ROOMS.map((r) => [r, 'out']));

  // ---- token -------------------------------------------------------------

  function base64UrlDecode(s) {
    let b64 = s.replace(/-/g, '+').replace(/_/g, '/');
    while (b64.length % 4) b64 += '=';
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new TextDecoder().decode(bytes);
  }

  // The payload of a JWT, unverified: for display only, the hub verifies.
  function decodeClaims(token) {
    const parts = token.split('.');
    if (parts.length !== 3) throw new Error('a token has three dot-separated parts');
    const claims = JSON.parse(base64UrlDecode(parts[1]));
    if (claims === null || typeof claims !== 'object') throw new Error('the payload is not an object');
    return claims;
  }

  function roles() {
    const r = conn.claims && conn.claims.roles;
    return Array.isArray(r) ? r.filter((x) => typeof x === 'string') : [];
  }

  function expired() {
    const exp = conn.claims && conn.claims.exp;
    return typeof exp === 'number' && exp * 1000 <= Date.now();
  }

  function showClaims() {
    const c = conn.claims;
    ui.who.hidden = !c;
    if (!c) return;
    ui.whoSub.textContent = String(c.sub ?? '(no sub)');
    ui.whoRoles.replaceChildren();
    const rs = roles();
    if (rs.length === 0) {
      const s = document.createElement('span');
      s.className = 'muted';
      s.textContent = 'no roles';
      ui.whoRoles.append(s);
    }
    for (const r of rs) {
      const s = document.createElement('span');
      s.className = 'role';
      s.textContent = r;
      ui.whoRoles.append(s);
    }
    if (typeof c.exp === 'number') {
      const when = new Date(c.exp * 1000);
      ui.whoExp.textContent = (expired() ? 'expired ' : 'expires ') + when.toLocaleString();
    } else {
      ui.whoExp.textContent = '';
    }
    ui.opsPanel.hidden = !rs.includes('ops');
  }

  function tokenProblem(text) {
    ui.tokenError.hidden = !text;
    ui.tokenError.textContent = text || '';
  }

  // ---- connection --------------------------------------------------------

  function setState(kind, text) {
    ui.state.className = 'state state-' + kind;
    ui.state.textContent = text;
  }

  function clearTimers() {
    clearTimeout(conn.retryTimer);
    clearInterval(conn.countdownTimer);
    clearInterval(conn.pingTimer);
    conn.retryTimer = conn.countdownTimer = conn.pingTimer = 0;
  }

  function wsUrl() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return scheme + '//' + location.host + '/ws?token=' + encodeURIComponent(conn.token);
  }

  function send(obj) {
    if (conn.ws && conn.ws.readyState === WebSocket.OPEN) {
      conn.ws.send(JSON.stringify(obj));
      return true;
    }
    return false;
  }

  function open() {
    clearTimers();
    if (expired()) {
      conn.wanted = false;
      setState('error', 'token expired');
      updateButtons();
      return;
    }
    setState('connecting', 'connecting…');
    let ws;
    try {
      ws = new WebSocket(wsUrl());
    } catch (e) {
      setState('error', 'cannot connect: ' + e.message);
      return;
    }
    conn.ws = ws;
    ws.onopen = () => {
      if (conn.ws !== ws) return;
      conn.backoff = BACKOFF_MIN_MS;
      setState('live', 'live');
      conn.pingTimer = setInterval(() => send({ op: 'ping' }), PING_EVERY_MS);
      // Join again what was joined (or being joined) before the drop.
      for (const [room, st] of rooms) {
        if (st === 'in' || st === 'joining') joinRoom(room);
        else if (st === 'leaving') setRoom(room, 'out');
      }
    };
    ws.onmessage = (ev) => {
      if (conn.ws !== ws) return;
      onFrame(ev.data);
    };
    ws.onclose = (ev) => {
      if (conn.ws !== ws) return;
      conn.ws = null;
      clearTimers();
      if (conn.wanted) scheduleReconnect(ev.code);
      else setState('idle', 'disconnected');
    };
    // onerror is always followed by onclose, which does the work.
    ws.onerror = () => {};
  }

  function scheduleReconnect(code) {
    const delay = conn.backoff;
    conn.backoff = Math.min(conn.backoff * 2, BACKOFF_MAX_MS);
    const due = Date.now() + delay;
    const why = code === 1006 ? '' : ' (closed ' + code + ')';
    const tick = () => {
      const left = Math.max(0, (due - Date.now()) / 1000);
      setState('reconnecting', 'reconnecting in ' + left.toFixed(1) + ' s' + why);
    };
    tick();
    conn.countdownTimer = setInterval(tick, 100);
    conn.retryTimer = setTimeout(open, delay);
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
    conn.token = token;
    conn.claims = claims;
    conn.wanted = true;
    conn.backoff = BACKOFF_MIN_MS;
    for (const room of rooms.keys()) setRoom(room, 'out');
    ui.tokenInput.value = token;
    const url = new URL(location.href);
    url.searchParams.set('token', token);
    history.replaceState(null, '', url);
    showClaims();
    if (expired()) tokenProblem('This token has expired; mint a new one.');
    updateButtons();
    open();
  }

  function disconnect(quiet) {
    conn.wanted = false;
    clearTimers();
    const ws = conn.ws;
    conn.ws = null;
    if (ws) ws.close(1000, 'bye');
    if (!quiet) setState('idle', 'disconnected');
    updateButtons();
  }

  function updateButtons() {
    ui.disconnect.disabled = !conn.wanted;
  }

  // ---- frames ------------------------------------------------------------

  function onFrame(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch (e) {
      addEntry(ui.timeline, 'error', 'bad frame', [String(text).slice(0, 200)]);
      return;
    }
    if (msg === null || typeof msg !== 'object' || typeof msg.event !== 'string') return;
    const data = msg.data;
    switch (msg.event) {
      case 'pong':
        return;
      case 'tradestate':
        return onTradeState(data);
      case 'canceledtrades':
        return addEntry(ui.timeline, 'canceledtrades', 'trade cancelled',
          ['A trade for ' + str(data) + ' was cancelled']);
      case 'reserve-items':
        return addEntry(ui.timeline, 'reserve-items', 'reserved items changed',
          ['Reload your inventory']);
      case 'bot-command':
        return onBotCommand(data);
      case 'bot':
        return onBot(data);
      case 'finishedtrades':
        return addEntry(ui.opsTimeline, 'finishedtrades', 'trade finished', [str(data)]);
      case 'steamDown':
        return addEntry(ui.opsTimeline, 'steamDown', 'steam status', [str(data)]);
      case 'joined':
        if (data && typeof data.room === 'string') setRoom(data.room, 'in');
        return;
      case 'left':
        if (data && typeof data.room === 'string') setRoom(data.room, 'out');
        return;
      case 'config':
        return addEntry(ui.timeline, 'config', 'config ' + str(data && data.key),
          [short(data && data.value) + ' (version ' + str(data && data.version) + ')']);
      case 'error':
        return onError(data);
      default:
        return addEntry(ui.timeline, 'other', msg.event, [short(data)]);
    }
  }

  function onTradeState(d) {
    if (!d || typeof d !== 'object') {
      addEntry(ui.timeline, 'tradestate', 'trade', [short(d)]);
      return;
    }
    const state = str(d.state || 'unknown');
    const lines = [str(d.msg || '')];
    const extra = d.extra && typeof d.extra === 'object' ? d.extra : null;
    const bits = [];
    if (extra && extra.bot !== undefined) bits.push('bot ' + str(extra.bot));
    if (extra && extra.items !== undefined) bits.push(str(extra.items) + ' item(s)');
    if (d.token) bits.push('offer ' + str(d.token));
    if (bits.length) lines.push(bits.join(' · '));
    addEntry(ui.timeline, 'tradestate', 'trade ' + state, lines, 'st-' + state.replace(/[^a-z]/gi, ''));
  }

  function onBotCommand(d) {
    d = d && typeof d === 'object' ? d : {};
    const lines = ['Bot ' + str(d.botId) + ': ' + str(d.command)];
    if (d.tradeHash) lines.push('trade ' + str(d.tradeHash));
    addEntry(ui.timeline, 'bot-command', 'bot command', lines);
  }

  function onBot(d) {
    d = d && typeof d === 'object' ? d : {};
    const lines = [str(d.command) + (d.steamId ? ' for ' + str(d.steamId) : '')];
    if (d.tradeHash) lines.push('trade ' + str(d.tradeHash));
    if (d.raw && d.raw !== d.command) lines.push({ text: short(d.raw), cls: 'raw' });
    addEntry(ui.opsTimeline, 'bot', 'bot ' + str(d.botId), lines);
  }

  function onError(d) {
    d = d && typeof d === 'object' ? d : {};
    // A refused join leaves the room button usable again.
    for (const [room, st] of rooms) {
      if (st === 'joining' || st === 'leaving') setRoom(room, st === 'joining' ? 'out' : 'in');
    }
    addEntry(ui.timeline, 'error', 'error ' + str(d.code), [str(d.message)]);
  }

  function str(v) {
    if (v === undefined || v === null) return '';
    return typeof v === 'string' ? v : JSON.stringify(v);
  }

  function short(v) {
    const s = str(v);
    return s.length > 300 ? s.slice(0, 300) + '…' : s;
  }

  // ---- rendering ---------------------------------------------------------

  function addEntry(list, kind, title, lines, extraClass) {
    const li = document.createElement('li');
    li.className = 'entry kind-' + kind + (extraClass ? ' ' + extraClass : '');

    const time = document.createElement('time');
    const now = new Date();
    time.dateTime = now.toISOString();
    time.textContent = now.toLocaleTimeString([], { hour12: false });

    const tag = document.createElement('span');
    tag.className = 'tag';
    tag.textContent = kind;

    const body = document.createElement('div');
    body.className = 'body';
    const head = document.createElement('div');
    head.className = 'title';
    head.textContent = title;
    body.append(head);
    for (const line of lines) {
      // a line is a string, or {text, cls} for a styled one
      const text = typeof line === 'string' ? line : line && line.text;
      if (!text) continue;
      const p = document.createElement('div');
      p.className = 'line' + (line.cls ? ' ' + line.cls : '');
      p.textContent = text;
      body.append(p);
    }

    li.append(time, tag, body);
    list.prepend(li);
    while (list.childElementCount > MAX_ENTRIES) list.lastElementChild.remove();
    updateCounts();
  }

  function updateCounts() {
    const n = ui.timeline.childElementCount;
    const m = ui.opsTimeline.childElementCount;
    ui.timelineCount.textContent = n + (n === 1 ? ' event' : ' events');
    ui.opsCount.textContent = m + (m === 1 ? ' event' : ' events');
    ui.timelineEmpty.hidden = n > 0;
    ui.opsEmpty.hidden = m > 0;
  }

  // ---- rooms -------------------------------------------------------------

  const roomButtons = new Map();
  let joinAllButton = null;

  function buildRooms() {
    for (const room of OPS_ROOMS) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'room';
      b.addEventListener('click', () => toggleRoom(room));
      roomButtons.set(room, b);
      ui.rooms.append(b);
      setRoom(room, 'out');
    }
    const all = document.createElement('button');
    all.type = 'button';
    all.className = 'room secondary';
    all.textContent = 'join all';
    all.addEventListener('click', () => {
      for (const [room, st] of rooms) if (st === 'out') joinRoom(room);
    });
    ui.rooms.append(all);
    joinAllButton = all;
    updateJoinAll();
  }

  function updateJoinAll() {
    if (joinAllButton) joinAllButton.disabled = ![...rooms.values()].includes('out');
  }

  function setRoom(room, st) {
    if (!rooms.has(room)) return;
    rooms.set(room, st);
    const b = roomButtons.get(room);
    if (!b) return;
    const label = { out: 'join ', joining: 'joining ', in: 'leave ', leaving: 'leaving ' }[st];
    b.textContent = label + room;
    b.classList.toggle('joined', st === 'in');
    b.disabled = st === 'joining' || st === 'leaving';
    updateJoinAll();
  }

  function joinRoom(room) {
    setRoom(room, 'joining');
    send({ op: 'join', room });
  }

  function toggleRoom(room) {
    const st = rooms.get(room);
    if (st === 'out') {
      joinRoom(room);
    } else if (st === 'in') {
      if (send({ op: 'leave', room })) setRoom(room, 'leaving');
      else setRoom(room, 'out');
    }
  }

  // ---- wiring ------------------------------------------------------------

  buildRooms();
  updateCounts();
  ui.connect.addEventListener('click', () => connect(ui.tokenInput.value));
  ui.tokenInput.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') connect(ui.tokenInput.value);
  });
  ui.disconnect.addEventListener('click', () => disconnect(false));
  ui.timelineClear.addEventListener('click', () => {
    ui.timeline.replaceChildren();
    updateCounts();
  });
  ui.opsClear.addEventListener('click', () => {
    ui.opsTimeline.replaceChildren();
    updateCounts();
  });

  const fromUrl = new URLSearchParams(location.search).get('token');
  if (fromUrl) connect(fromUrl);
  else ui.tokenInput.focus();
})();

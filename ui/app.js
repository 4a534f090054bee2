// cronhook dashboard: plain JavaScript, no build step, no other origin.
//
// Every string that comes from the API (names, URLs, headers, errors) is put in the page
// with textContent or createTextNode, never as HTML. The token lives in sessionStorage
// and travels only in the Authorization header.
'use strict';

(() => {
  /** Where the token is kept for this tab. */
  const TOKEN_KEY = 'cronhook.token';
  /** How often the current view reloads its data. */
  const REFRESH_MS = 3000;
  /** How often the status strip reloads. */
  const STATUS_MS = 4000;
  /** Jobs per page of the list. */
  const JOBS_PAGE = 50;
  /** Executions shown as marks in the list. */
  const MARKS = 10;
  /** Executions drawn in a job's chart. */
  const CHART_POINTS = 30;
  /** Executions per page of a job's history. */
  const HISTORY_PAGE = 20;
  /** How long the form waits after a key before it asks for the preview. */
  const PREVIEW_DEBOUNCE_MS = 200;
  /** Execution states that do not change any more. */
  const FINAL = new Set(['succeeded', 'failed', 'unknown', 'skipped']);
  const SVG_NS = 'http://www.w3.org/2000/svg';

  // ---------------------------------------------------------------------------------
  // DOM helpers.

  /**
   * Builds an element. `props` holds `class`, `text`, `dataset`, `on` (event handlers),
   * `attrs` and plain properties; children are nodes or strings (text nodes).
   */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    setProps(el, props);
    append(el, children);
    return el;
  }

  /** Builds an SVG element with attributes. */
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null) el.setAttribute(k, String(v));
    }
    append(el, children);
    return el;
  }

  function setProps(el, props) {
    if (!props) return;
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
      else if (k === 'attrs') for (const [a, av] of Object.entries(v)) el.setAttribute(a, av);
      else el[k] = v;
    }
  }

  function append(el, children) {
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      el.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
    }
  }

  /** Replaces an element's children; strings become text nodes, null and false nothing. */
  function fill(el, ...children) {
    el.replaceChildren();
    append(el, children);
    return el;
  }

  const $ = (sel, root) => (root || document).querySelector(sel);

  // ---------------------------------------------------------------------------------
  // Formatting.

  const pad = (n, w) => String(n).padStart(w || 2, '0');

  /** A local date and time, to the second. */
  function fmtTime(iso) {
    if (!iso) return '–';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  /** A local time with milliseconds, for executions. */
  function fmtPrecise(iso) {
    if (!iso) return '–';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    return `${fmtTime(iso)}.${pad(d.getMilliseconds(), 3)}`;
  }

  /** An instant in the named zone, e.g. `2025-01-01 10:00:02 Europe/Paris`. */
  function fmtInZone(iso, tz) {
    try {
      const parts = new Intl.DateTimeFormat('en-CA', {
        timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit',
        hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
      }).formatToParts(new Date(iso));
      const p = Object.fromEntries(parts.map((x) => [x.type, x.value]));
      return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second} ${tz}`;
    } catch {
      return `${fmtTime(iso)} (local)`;
    }
  }

  /** A duration in milliseconds, for a person. */
  function fmtMs(ms) {
    if (ms === undefined || ms === null || Number.isNaN(ms)) return '–';
    const neg = ms < 0 ? '−' : '';
    const a = Math.abs(ms);
    if (a < 1000) return `${neg}${Math.round(a)} ms`;
    if (a < 60000) return `${neg}${(a / 1000).toFixed(a < 10000 ? 2 : 1)} s`;
    const min = Math.floor(a / 60000);
    if (min < 60) return `${neg}${min} min ${Math.round((a % 60000) / 1000)} s`;
    return `${neg}${Math.floor(min / 60)} h ${min % 60} min`;
  }

  /** How far an instant is from now: `in 4 s`, `3 min ago`. */
  function fmtRelative(iso) {
    if (!iso) return '–';
    const t = new Date(iso).getTime();
    if (Number.isNaN(t)) return '–';
    const d = (t - Date.now()) / 1000;
    const a = Math.abs(d);
    let v;
    if (a < 1) return 'now';
    if (a < 60) v = `${Math.round(a)} s`;
    else if (a < 3600) v = `${Math.round(a / 60)} min`;
    else if (a < 86400) v = `${Math.round(a / 3600)} h`;
    else v = `${Math.round(a / 86400)} d`;
    return d > 0 ? `in ${v}` : `${v} ago`;
  }

  /** A span that says how far `iso` is from now, kept current by the ticker. */
  function relative(iso) {
    return h('time', { class: 'rel', dataset: { rel: iso || '' }, dateTime: iso || '', title: iso ? fmtTime(iso) : '', text: fmtRelative(iso) });
  }

  /** Refreshes every relative time on the page. */
  function tick() {
    for (const el of document.querySelectorAll('[data-rel]')) {
      const text = fmtRelative(el.dataset.rel);
      if (el.textContent !== text) el.textContent = text;
    }
  }

  // ---------------------------------------------------------------------------------
  // Token.

  const token = {
    get() {
      try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; }
    },
    set(v) {
      try { sessionStorage.setItem(TOKEN_KEY, v); } catch { /* storage refused: kept nowhere */ }
      syncForget();
    },
    forget() {
      try { sessionStorage.removeItem(TOKEN_KEY); } catch { /* nothing kept */ }
      syncForget();
    },
  };

  function syncForget() {
    $('#forget-token').hidden = !token.get();
  }

  // ---------------------------------------------------------------------------------
  // API.

  /** A refused or failed request, with the API's error message. */
  class ApiError extends Error {
    constructor(status, code, message, field) {
      super(message);
      this.status = status;
      this.code = code;
      this.field = field;
    }
  }

  /** Whether the token form is up: views then wait for it. */
  let locked = false;

  /**
   * Sends a request to the API with the token; resolves to `{data, headers, status}`.
   * A 401 brings up the token form.
   */
  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    const t = token.get();
    if (t) headers.Authorization = `Bearer ${t}`;
    const init = { method, headers, credentials: 'omit', cache: 'no-store', redirect: 'error' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch {
      throw new ApiError(0, 'network', 'the server did not answer');
    }
    const text = await res.text().catch(() => '');
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch { data = null; }
    }
    if (res.status === 401) {
      if (t) token.forget();
      askToken(t ? 'The token was refused. Enter the API token again.' : 'This server needs its API token.');
      throw new ApiError(401, 'unauthorized', 'a valid token is required');
    }
    if (!res.ok) {
      const e = data && data.error;
      throw new ApiError(res.status, (e && e.code) || `http_${res.status}`,
        (e && e.message) || `the server answered ${res.status}`, e && e.field);
    }
    return { data, headers: res.headers, status: res.status };
  }

  /** Runs `fn` over `items`, at most `limit` at a time; failures become `undefined`. */
  async function mapLimit(items, limit, fn) {
    const out = new Array(items.length);
    let next = 0;
    const worker = async () => {
      while (next < items.length) {
        const i = next++;
        try { out[i] = await fn(items[i], i); } catch { out[i] = undefined; }
      }
    };
    await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
    return out;
  }

  /** Execution details by id, for executions that ended (they do not change). */
  const details = new Map();

  /** One execution's details, from the cache when it has ended. */
  async function executionDetail(jobId, id) {
    const cached = details.get(id);
    if (cached) return cached;
    const { data } = await api('GET', `/jobs/${enc(jobId)}/executions/${enc(id)}`);
    if (data && FINAL.has(data.state)) {
      if (details.size > 5000) details.clear();
      details.set(id, data);
    }
    return data;
  }

  const enc = encodeURIComponent;

  /** `ok`, `fail` or `other` (skipped, unknown, in progress) for an execution. */
  function outcome(e) {
    const d = details.get(e.id);
    const state = e.state || (d && d.state);
    if (state === 'succeeded') return 'ok';
    if (state === 'failed') return 'fail';
    if (state) return 'other';
    if (e.success === true) return 'ok';
    if (e.success === false) return 'fail';
    return 'other';
  }

  /** The word for an execution's outcome. */
  function outcomeWord(e) {
    const d = details.get(e.id);
    return e.state || (d && d.state) || (e.success ? 'succeeded' : 'failed');
  }

  /** Loads the details of the failed executions among `execs`, to tell skipped apart. */
  async function explainFailures(jobId, execs) {
    const unknown = execs.filter((e) => !e.state && !e.success && !details.has(e.id));
    await mapLimit(unknown, 3, (e) => executionDetail(jobId, e.id));
  }

  // ---------------------------------------------------------------------------------
  // Toasts and the confirmation dialog.

  function toast(message, kind) {
    const el = h('div', { class: `toast ${kind || ''}`, role: kind === 'error' ? 'alert' : 'status', text: message });
    $('#toasts').appendChild(el);
    setTimeout(() => el.remove(), kind === 'error' ? 8000 : 4000);
  }

  /** Asks the user to confirm in the page's dialog; resolves to true or false. */
  function confirmDialog(title, message, okLabel) {
    const dialog = $('#confirm-dialog');
    $('#confirm-title').textContent = title;
    $('#confirm-message').textContent = message;
    $('#confirm-ok').textContent = okLabel;
    return new Promise((resolve) => {
      const done = (answer) => {
        $('#confirm-ok').removeEventListener('click', ok);
        $('#confirm-cancel').removeEventListener('click', cancel);
        dialog.removeEventListener('cancel', cancel);
        if (dialog.open) dialog.close();
        resolve(answer);
      };
      const ok = () => done(true);
      const cancel = (ev) => { if (ev) ev.preventDefault(); done(false); };
      $('#confirm-ok').addEventListener('click', ok);
      $('#confirm-cancel').addEventListener('click', cancel);
      dialog.addEventListener('cancel', cancel);
      dialog.showModal();
      $('#confirm-cancel').focus();
    });
  }

  // ---------------------------------------------------------------------------------
  // The token form.

  function askToken(reason) {
    $('#token-reason').textContent = reason;
    if (locked) return;
    locked = true;
    disposeView();
    $('#main').hidden = true;
    $('#token-view').hidden = false;
    $('#token-error').hidden = true;
    $('#token-input').value = '';
    $('#token-input').focus();
  }

  async function submitToken(ev) {
    ev.preventDefault();
    const value = $('#token-input').value.trim();
    const err = $('#token-error');
    if (!value) {
      err.textContent = 'Enter the token.';
      err.hidden = false;
      return;
    }
    $('#token-submit').disabled = true;
    try {
      const res = await fetch('/jobs?limit=1', {
        headers: { Accept: 'application/json', Authorization: `Bearer ${value}` },
        credentials: 'omit', cache: 'no-store', redirect: 'error',
      });
      if (res.status === 401) {
        err.textContent = 'That token was refused.';
        err.hidden = false;
        return;
      }
      token.set(value);
      $('#token-input').value = '';
      err.hidden = true;
      locked = false;
      $('#token-view').hidden = true;
      $('#main').hidden = false;
      route();
      refreshStatus();
    } catch {
      err.textContent = 'The server did not answer.';
      err.hidden = false;
    } finally {
      $('#token-submit').disabled = false;
    }
  }

  // ---------------------------------------------------------------------------------
  // Status strip.

  /** The 99th percentile bucket of the fire lag histogram and the live node count. */
  function parseMetrics(text) {
    const buckets = new Map();
    let count = null;
    let nodes = null;
    for (const line of text.split('\n')) {
      if (!line || line.startsWith('#')) continue;
      const m = /^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
      if (!m) continue;
      const [, name, labels, raw] = m;
      const value = raw === '+Inf' ? Infinity : Number(raw);
      if (Number.isNaN(value)) continue;
      if (name === 'cronhook_fire_lag_seconds_bucket') {
        const le = /(?:^\{|,)\s*le="([^"]*)"/.exec(labels || '');
        if (!le) continue;
        const bound = le[1] === '+Inf' ? Infinity : Number(le[1]);
        if (Number.isNaN(bound)) continue;
        buckets.set(bound, (buckets.get(bound) || 0) + value);
      } else if (name === 'cronhook_fire_lag_seconds_count') {
        count = (count || 0) + value;
      } else if (name === 'cronhook_nodes_live') {
        nodes = nodes === null ? value : Math.max(nodes, value);
      }
    }
    const sorted = [...buckets.entries()].sort((a, b) => a[0] - b[0]);
    if (count === null && buckets.has(Infinity)) count = buckets.get(Infinity);
    let p99 = null;
    if (count) {
      for (const [bound, c] of sorted) {
        if (c >= 0.99 * count) { p99 = bound; break; }
      }
    }
    const finite = sorted.filter(([b]) => Number.isFinite(b));
    const largest = finite.length ? finite[finite.length - 1][0] : null;
    return { p99, largest, nodes };
  }

  function setStat(id, text, title) {
    const el = $(`#${id} .stat-text`);
    el.textContent = text;
    $(`#${id}`).title = title || '';
  }

  let statusTimer = null;
  let statusBusy = false;

  /** Reloads the strip now, then every few seconds; one chain of reloads at a time. */
  async function refreshStatus() {
    if (statusBusy) return;
    statusBusy = true;
    clearTimeout(statusTimer);
    try {
      if (!document.hidden) await Promise.all([loadHealth(), loadMetrics()]);
    } finally {
      statusBusy = false;
      statusTimer = setTimeout(refreshStatus, STATUS_MS);
    }
  }

  async function loadHealth() {
    const box = $('#stat-health');
    try {
      const res = await fetch('/health', { headers: { Accept: 'application/json' }, credentials: 'omit', cache: 'no-store', redirect: 'error' });
      const body = await res.json();
      const w = body.worker || {};
      box.dataset.status = body.status || 'unknown';
      setStat('stat-health', body.status || `HTTP ${res.status}`, body.reason || '');
      setStat('stat-queue', String(w.queueSize ?? '–'), 'Due fires waiting to start');
      setStat('stat-active', String(w.activeWorkers ?? '–'), 'Calls in flight, slow calls included');
      setStat('stat-slow', String(w.slowCalls ?? '–'), 'Calls that outlived SLOW_CALL_MS');
      setStat('stat-behind', w.behindMs === undefined ? '–' : fmtMs(w.behindMs), 'How long the longest-waiting due fire has waited');
    } catch {
      box.dataset.status = 'unreachable';
      setStat('stat-health', 'unreachable', 'The server did not answer /health');
    }
    const updated = $('#stat-updated .stat-text');
    updated.dataset.rel = new Date().toISOString();
    updated.textContent = 'now';
  }

  /** Status reloads to skip before asking a server without `/metrics` again. */
  let metricsSkip = 0;

  async function loadMetrics() {
    let m = { p99: null, nodes: null };
    if (metricsSkip > 0) {
      metricsSkip -= 1;
    } else {
      try {
        const headers = { Accept: 'text/plain' };
        const t = token.get();
        if (t) headers.Authorization = `Bearer ${t}`;
        const res = await fetch('/metrics', { headers, credentials: 'omit', cache: 'no-store', redirect: 'error' });
        if (res.ok) m = parseMetrics(await res.text());
        else if (res.status === 404) metricsSkip = 15;
      } catch {
        // No metrics: the strip shows dashes.
      }
    }
    let lag = '–';
    if (m.p99 === Infinity) lag = m.largest === null ? '–' : `> ${fmtMs(m.largest * 1000)}`;
    else if (m.p99 !== null) lag = `≤ ${fmtMs(m.p99 * 1000)}`;
    setStat('stat-lag', lag, 'Upper bound of the histogram bucket holding the 99th percentile of fire lag');
    setStat('stat-nodes', m.nodes === null ? '–' : String(m.nodes), 'Nodes with a live lease');
  }

  // ---------------------------------------------------------------------------------
  // Views and routing.

  /** The current view's timers and liveness. */
  let view = null;

  function newView() {
    disposeView();
    const v = {
      alive: true,
      timers: [],
      later(fn, ms) { const id = setTimeout(() => { if (v.alive) fn(); }, ms); v.timers.push(id); return id; },
    };
    view = v;
    return v;
  }

  function disposeView() {
    if (!view) return;
    view.alive = false;
    for (const id of view.timers) clearTimeout(id);
    view = null;
  }

  function route() {
    if (locked) return;
    const path = location.hash.replace(/^#/, '') || '/';
    const main = $('#main');
    main.replaceChildren();
    let m;
    for (const a of document.querySelectorAll('.topnav a')) a.classList.remove('current');
    if (path === '/' || path === '/jobs') {
      $('#nav-jobs').classList.add('current');
      jobsView(main);
    } else if (path === '/jobs/new') {
      $('#nav-new').classList.add('current');
      formView(main, null);
    } else if ((m = /^\/jobs\/([0-9A-Fa-f-]{36})$/.exec(path))) {
      jobView(main, m[1]);
    } else if ((m = /^\/jobs\/([0-9A-Fa-f-]{36})\/edit$/.exec(path))) {
      formView(main, m[1]);
    } else {
      newView();
      main.append(h('section', { class: 'card empty' }, h('h1', { text: 'Not found' }),
        h('p', {}, 'No page here. ', h('a', { href: '#/', text: 'Back to the jobs' }), '.')));
    }
  }

  /** A message in the view for an error that is not the token form's. */
  function showError(box, e) {
    if (e && e.status === 401) return;
    box.textContent = e && e.message ? `Error: ${e.message}` : 'Error';
    box.hidden = false;
  }

  // ---------------------------------------------------------------------------------
  // The jobs list.

  const listState = { state: '', name: '' };

  function jobsView(main) {
    const v = newView();
    let jobs = [];
    let nextCursor = null;
    const rows = new Map();
    const marks = new Map();

    const nameFilter = h('input', {
      type: 'search', id: 'filter-name', placeholder: 'Filter by name', value: listState.name,
      attrs: { 'aria-label': 'Filter by name' },
      on: { input: () => { listState.name = nameFilter.value; render(); } },
    });
    const stateFilter = h('select', {
      id: 'filter-state', attrs: { 'aria-label': 'Filter by state' },
      on: { change: () => { listState.state = stateFilter.value; load(true); } },
    },
    h('option', { value: '', text: 'All states' }),
    h('option', { value: 'active', text: 'Active' }),
    h('option', { value: 'paused', text: 'Paused' }),
    h('option', { value: 'finished', text: 'Finished' }));
    stateFilter.value = listState.state;
    const count = h('span', { class: 'count', id: 'jobs-count' });
    const error = h('p', { class: 'notice error', id: 'jobs-error', hidden: true });
    const tbody = h('tbody', { id: 'jobs-body' });
    const table = h('table', { class: 'jobs', id: 'jobs-table' },
      h('thead', {}, h('tr', {},
        h('th', { text: 'Name' }), h('th', { text: 'Schedule' }), h('th', { text: 'Next run' }),
        h('th', { text: 'Recent' }), h('th', { text: 'State' }), h('th', { class: 'actions-head', text: 'Actions' }))),
      tbody);
    const empty = h('div', { class: 'empty', id: 'jobs-empty', hidden: true });
    const more = h('button', { type: 'button', id: 'load-more', text: 'Load more', hidden: true, on: { click: () => loadMore() } });

    main.append(
      h('section', { class: 'toolbar' },
        h('h1', { text: 'Jobs' }),
        h('div', { class: 'filters' }, nameFilter, stateFilter),
        count),
      error,
      h('div', { class: 'card table-card' }, table, empty),
      h('div', { class: 'more' }, more));

    function query(limit, cursor) {
      const p = new URLSearchParams({ limit: String(limit) });
      if (listState.state) p.set('state', listState.state);
      if (cursor) p.set('cursor', cursor);
      return `/jobs?${p}`;
    }

    /** Bumped by each load: an answer to an older one is dropped. */
    let loadSeq = 0;

    /** Loads the first page (`reset`), or reloads as many jobs as are shown. */
    async function load(reset) {
      const seq = ++loadSeq;
      const limit = reset ? JOBS_PAGE : Math.min(500, Math.max(JOBS_PAGE, jobs.length));
      try {
        const { data } = await api('GET', query(limit));
        if (!v.alive || seq !== loadSeq) return;
        jobs = data.jobs || [];
        nextCursor = data.nextCursor || null;
        error.hidden = true;
        render();
        await loadMarks();
      } catch (e) {
        if (v.alive) showError(error, e);
      }
    }

    async function loadMore() {
      if (!nextCursor) return;
      const seq = ++loadSeq;
      more.disabled = true;
      try {
        const { data } = await api('GET', query(JOBS_PAGE, nextCursor));
        if (!v.alive || seq !== loadSeq) return;
        jobs = jobs.concat(data.jobs || []);
        nextCursor = data.nextCursor || null;
        render();
        await loadMarks();
      } catch (e) {
        if (v.alive) showError(error, e);
      } finally {
        more.disabled = false;
      }
    }

    function visible() {
      const needle = listState.name.trim().toLowerCase();
      if (!needle) return jobs;
      return jobs.filter((j) => (j.name || '').toLowerCase().includes(needle) || j.id.includes(needle));
    }

    function render() {
      const shown = visible();
      const keep = new Set(shown.map((j) => j.id));
      for (const [id, row] of rows) {
        if (!keep.has(id)) { row.el.remove(); rows.delete(id); }
      }
      let prev = null;
      for (const job of shown) {
        let row = rows.get(job.id);
        if (!row) {
          row = jobRow(job, { onChange: changed, onDelete: removed });
          rows.set(job.id, row);
        }
        row.update(job);
        if (marks.has(job.id)) row.setMarks(marks.get(job.id));
        const want = prev ? prev.el.nextSibling : tbody.firstChild;
        if (want !== row.el) tbody.insertBefore(row.el, want);
        prev = row;
      }
      const filtered = shown.length !== jobs.length;
      count.textContent = `${filtered ? `${shown.length} of ` : ''}${jobs.length} job${jobs.length === 1 ? '' : 's'}` +
        (nextCursor ? ', more on the server' : '');
      table.hidden = shown.length === 0;
      empty.hidden = shown.length !== 0;
      empty.replaceChildren();
      if (!jobs.length) {
        empty.append(h('p', {}, listState.state ? `No ${listState.state} jobs. ` : 'No jobs yet. ',
          h('a', { href: '#/jobs/new', text: 'Create a job' }), '.'));
      } else if (!shown.length) {
        empty.append(h('p', { text: 'No job matches the filter.' }));
      }
      more.hidden = !nextCursor;
    }

    /** Loads each shown job's last executions and colours its marks. */
    async function loadMarks() {
      const shown = visible().slice(0, 200);
      await mapLimit(shown, 4, async (job) => {
        const { data } = await api('GET', `/jobs/${enc(job.id)}/executions?limit=${MARKS}`);
        if (!v.alive) return;
        await explainFailures(job.id, data);
        if (!v.alive) return;
        marks.set(job.id, data);
        const row = rows.get(job.id);
        if (row) row.setMarks(data);
      });
    }

    function changed(job) {
      const i = jobs.findIndex((j) => j.id === job.id);
      if (i < 0) return;
      if (listState.state && job.state !== listState.state) jobs.splice(i, 1);
      else jobs[i] = job;
      render();
    }

    function removed(id) {
      jobs = jobs.filter((j) => j.id !== id);
      marks.delete(id);
      render();
    }

    /** Reloads now and then: less often with many jobs, each of which costs a request. */
    async function poll() {
      if (!v.alive) return;
      if (!document.hidden) await load(false);
      v.later(poll, Math.max(REFRESH_MS, visible().length * 100));
    }

    load(true).then(() => v.later(poll, REFRESH_MS));
  }

  /** The label of a job: its name, or the end of its id (the start of a UUIDv7 is a time). */
  function jobLabel(job) {
    return job.name || `job …${job.id.slice(-8)}`;
  }

  /** A URL without its scheme, query and fragment, for a glance. */
  function shortUrl(url) {
    try {
      const u = new URL(url);
      return `${u.host}${u.pathname === '/' ? '' : u.pathname}`;
    } catch {
      return url;
    }
  }

  /** A row of the jobs list, updated in place. */
  function jobRow(job, hooks) {
    const el = h('tr', { class: 'job-row', dataset: { jobId: job.id } });
    const cells = {
      name: h('td', { class: 'cell-name', dataset: { label: 'Name' } }),
      schedule: h('td', { class: 'cell-schedule', dataset: { label: 'Schedule' } }),
      next: h('td', { class: 'cell-next', dataset: { label: 'Next run' } }),
      marks: h('td', { class: 'cell-marks', dataset: { label: 'Recent' } }),
      state: h('td', { class: 'cell-state', dataset: { label: 'State' } }),
      actions: h('td', { class: 'cell-actions' }),
    };
    const buttons = jobActions(() => current, {
      onChange: (j) => { current = j; paint(); hooks.onChange(j); },
      onDelete: hooks.onDelete,
    });
    cells.actions.append(buttons.el);
    el.append(...Object.values(cells));
    let current = job;
    let sig = '';
    let marksSig = '';

    function paint() {
      const j = current;
      const next = JSON.stringify(j);
      if (next === sig) return;
      sig = next;
      fill(cells.name,
        h('a', { class: 'job-name', href: `#/jobs/${j.id}`, text: jobLabel(j) }),
        h('div', { class: 'sub target-line', title: j.api }, h('span', { class: 'method', text: j.method }), ' ', shortUrl(j.api)));
      fill(cells.schedule,
        h('code', { class: 'schedule', text: j.schedule }),
        // The description names the zone when it is not UTC; without one, the zone alone.
        typeof j.description === 'string' && j.description
          ? h('div', { class: 'sub description', text: j.description })
          : (j.timezone && j.timezone !== 'UTC' ? h('div', { class: 'sub', text: j.timezone }) : null));
      fill(cells.next, j.state === 'active' && j.nextRunAt ? relative(j.nextRunAt) : h('span', { class: 'muted', text: '–' }));
      fill(cells.state, stateBadge(j));
      buttons.sync();
    }

    return {
      el,
      update(j) { current = j; paint(); },
      setMarks(execs) {
        const next = JSON.stringify(execs.map((e) => [e.id, outcome(e)]));
        if (next === marksSig) return;
        marksSig = next;
        fill(cells.marks, markStrip(execs));
      },
    };
  }

  /** A job's state as a coloured badge. */
  function stateBadge(job) {
    return h('span', { class: `badge state-${job.state}`, text: job.state });
  }

  /** The last executions as coloured marks, oldest on the left. */
  function markStrip(execs) {
    const wrap = h('span', { class: 'marks', attrs: { role: 'img' } });
    const list = execs.slice().reverse();
    const words = [];
    for (const e of list) {
      const o = outcome(e);
      const word = outcomeWord(e);
      words.push(word);
      wrap.append(h('span', {
        class: `mark ${o}`, dataset: { executionId: e.id, outcome: o },
        title: `${fmtPrecise(e.executedAt)}: ${word}${e.statusCode ? ` (HTTP ${e.statusCode})` : ''}, ${fmtMs(e.durationMs)}`,
      }));
    }
    if (!list.length) wrap.append(h('span', { class: 'muted', text: 'none yet' }));
    wrap.setAttribute('aria-label', list.length ? `Last executions, oldest first: ${words.join(', ')}` : 'No executions yet');
    return wrap;
  }

  /**
   * Pause or resume, trigger, edit and delete buttons for the job `get()` returns.
   * `hooks.onChange(job)` gets the changed job, `hooks.onDelete(id)` the deleted id.
   */
  function jobActions(get, hooks) {
    const act = async (btn, fn) => {
      for (const b of el.querySelectorAll('button')) b.disabled = true;
      try {
        await fn();
      } catch (e) {
        if (e.status !== 401) toast(`${btn.textContent} failed: ${e.message}`, 'error');
      } finally {
        for (const b of el.querySelectorAll('button')) b.disabled = false;
      }
    };
    const pause = h('button', {
      type: 'button', class: 'act-pause', text: 'Pause',
      on: { click: () => act(pause, async () => {
        const { data } = await api('POST', `/jobs/${enc(get().id)}/pause`);
        toast(`Paused ${jobLabel(data)}`);
        hooks.onChange(data);
      }) },
    });
    const resume = h('button', {
      type: 'button', class: 'act-resume', text: 'Resume',
      on: { click: () => act(resume, async () => {
        const { data } = await api('POST', `/jobs/${enc(get().id)}/resume`);
        toast(`Resumed ${jobLabel(data)}`);
        hooks.onChange(data);
      }) },
    });
    const trigger = h('button', {
      type: 'button', class: 'act-trigger', text: 'Trigger',
      on: { click: () => act(trigger, async () => {
        await api('POST', `/jobs/${enc(get().id)}/trigger`);
        toast(`Triggered ${jobLabel(get())}: one call now`);
      }) },
    });
    const edit = h('a', { class: 'button act-edit', text: 'Edit' });
    const del = h('button', {
      type: 'button', class: 'danger act-delete', text: 'Delete',
      on: { click: () => act(del, async () => {
        const job = get();
        const yes = await confirmDialog('Delete this job?',
          `“${jobLabel(job)}” and its whole execution history will be deleted. Nothing fires after this.`, 'Delete');
        if (!yes) return;
        await api('DELETE', `/jobs/${enc(job.id)}`);
        toast(`Deleted ${jobLabel(job)}`);
        hooks.onDelete(job.id);
      }) },
    });
    const el = h('div', { class: 'actions' }, pause, resume, trigger, edit, del);
    return {
      el,
      sync() {
        const job = get();
        pause.hidden = !job.enabled;
        resume.hidden = job.enabled;
        edit.href = `#/jobs/${job.id}/edit`;
      },
    };
  }

  // ---------------------------------------------------------------------------------
  // A job's page.

  function jobView(main, id) {
    const v = newView();
    let job = null;
    const error = h('p', { class: 'notice error', id: 'job-error', hidden: true });
    const title = h('h1', { id: 'job-title', text: 'Job' });
    const badge = h('span', { class: 'badge' });
    const buttons = jobActions(() => job, {
      onChange: (j) => { job = j; paintJob(); },
      onDelete: () => { location.hash = '#/'; },
    });
    buttons.el.hidden = true;
    const settings = h('dl', { class: 'settings', id: 'job-settings' });
    const chartBox = h('div', { class: 'chart-box', id: 'job-chart' });
    const histBody = h('tbody', { id: 'history-body' });
    const histEmpty = h('p', { class: 'muted', id: 'history-empty', hidden: true, text: 'No executions yet.' });
    const newer = h('button', { type: 'button', id: 'history-newer', text: '← Newer', disabled: true, on: { click: () => page(-1) } });
    const older = h('button', { type: 'button', id: 'history-older', text: 'Older →', disabled: true, on: { click: () => page(+1) } });
    const pageLabel = h('span', { class: 'muted', id: 'history-page' });

    main.append(
      h('nav', { class: 'crumbs' }, h('a', { href: '#/', text: 'Jobs' }), ' / ', h('span', { id: 'crumb-name', text: `…${id.slice(-8)}` })),
      h('section', { class: 'job-head' }, h('div', { class: 'title-row' }, title, badge), buttons.el),
      error,
      h('div', { class: 'grid' },
        h('section', { class: 'card' }, h('h2', { text: 'Settings' }), settings),
        h('section', { class: 'card' }, h('h2', { text: 'Lag and duration' }),
          h('p', { class: 'hint', text: `The last ${CHART_POINTS} executions, oldest on the left. Lag is when the call left minus its scheduled instant.` }),
          chartBox)),
      h('section', { class: 'card history' },
        h('div', { class: 'card-head' }, h('h2', { text: 'Executions' }), h('div', { class: 'pager' }, newer, pageLabel, older)),
        h('table', { class: 'executions', id: 'history-table' },
          h('thead', {}, h('tr', {}, h('th', { text: 'Executed at' }), h('th', { text: 'Outcome' }), h('th', { text: 'HTTP' }),
            h('th', { text: 'Duration' }), h('th', { text: 'Lag' }), h('th', {}, h('span', { class: 'sr-only', text: 'Details' })))),
          histBody),
        histEmpty));

    let paintSig = '';
    function paintJob() {
      const sig = JSON.stringify(job);
      if (sig === paintSig) return;
      paintSig = sig;
      title.textContent = jobLabel(job);
      $('#crumb-name').textContent = jobLabel(job);
      badge.className = `badge state-${job.state}`;
      badge.textContent = job.state;
      buttons.el.hidden = false;
      buttons.sync();
      const headers = Object.keys(job.headers || {});
      const retry = job.retry
        ? Object.entries(job.retry).filter(([, x]) => x !== null && x !== undefined).map(([k, x]) => `${k} ${x}`).join(', ')
        : '';
      const rows = [
        ['Id', h('span', { class: 'mono', text: job.id })],
        ['Name', job.name || h('span', { class: 'muted', text: 'none' })],
        ['Schedule', h('span', {}, h('code', { class: 'schedule', text: job.schedule }),
          typeof job.description === 'string' && job.description ? h('span', { class: 'sub description', text: ` ${job.description}` }) : null)],
        ['Time zone', job.timezone],
        ['Next run', job.state === 'active' && job.nextRunAt
          ? h('span', {}, relative(job.nextRunAt), h('span', { class: 'muted', text: ` · ${fmtTime(job.nextRunAt)}` }))
          : h('span', { class: 'muted', text: '–' })],
        ['Target', h('span', { class: 'target' }, h('span', { class: 'method', text: job.method }), ' ', h('span', { class: 'mono break', text: job.api }))],
        ['Delivery', job.type],
        ['Headers', headers.length ? h('ul', { class: 'plain' }, headers.map((n) => h('li', {}, h('span', { class: 'mono', text: n }), h('span', { class: 'muted', text: ': value hidden' })))) : h('span', { class: 'muted', text: 'none' })],
        ['Body', job.body !== null && job.body !== undefined ? h('pre', { class: 'body', text: job.body }) : h('span', { class: 'muted', text: 'cronhook’s own JSON' })],
        ['Timeout', job.timeoutMs ? fmtMs(job.timeoutMs) : h('span', { class: 'muted', text: 'default' })],
        ['Spread', job.spreadMs ? `each fire within ${fmtMs(job.spreadMs)} after its instant, at a fixed offset` : h('span', { class: 'muted', text: 'none: on the instant' })],
        ['Retry', retry || h('span', { class: 'muted', text: 'defaults' })],
        ['Misfire policy', job.misfirePolicy],
        ['Concurrency', job.concurrencyPolicy],
        ['Enabled', job.enabled ? 'yes' : 'no'],
        ['Signing secret', job.hasSigningSecret ? 'its own' : h('span', { class: 'muted', text: 'the server’s, if any' })],
        ['Last execution', job.lastExecution
          ? h('span', {}, h('span', { class: `mark ${outcome(job.lastExecution)}` }), ' ', relative(job.lastExecution.executedAt))
          : h('span', { class: 'muted', text: 'none yet' })],
        ['Created', fmtTime(job.createdAt)],
        ['Updated', fmtTime(job.updatedAt)],
        ['Version', String(job.version)],
      ];
      fill(settings, ...rows.flatMap(([k, val]) => [h('dt', { text: k }), h('dd', {}, val)]));
    }

    /** Loads the job; false once it is known not to exist. */
    async function loadJob() {
      try {
        const { data } = await api('GET', `/jobs/${enc(id)}`);
        if (!v.alive) return true;
        job = data;
        error.hidden = true;
        paintJob();
        return true;
      } catch (e) {
        if (!v.alive) return true;
        if (e.status === 404) {
          job = null;
          buttons.el.hidden = true;
          title.textContent = 'No such job';
          fill(error, 'This job does not exist (it may have been deleted). ', h('a', { href: '#/', text: 'Back to the jobs' }), '.');
          error.hidden = false;
          return false;
        }
        showError(error, e);
        return true;
      }
    }

    // The chart: the last executions with their details.
    let chartSig = '';
    async function loadChart() {
      const { data } = await api('GET', `/jobs/${enc(id)}/executions?limit=${CHART_POINTS}`);
      const full = await mapLimit(data, 4, (e) => (e.scheduledAt && e.state ? e : executionDetail(id, e.id)));
      if (!v.alive) return;
      const points = data.map((e, i) => {
        const d = full[i] || {};
        const scheduled = e.scheduledAt || d.scheduledAt;
        const lag = scheduled ? new Date(e.executedAt) - new Date(scheduled) : null;
        return { id: e.id, at: e.executedAt, lag, duration: e.durationMs, outcome: outcome(e), word: outcomeWord(e), status: e.statusCode };
      }).reverse();
      const sig = JSON.stringify(points);
      if (sig === chartSig) return;
      chartSig = sig;
      fill(chartBox, drawChart(points));
    }

    // The history: pages through cursors.
    const cursors = [null];
    let pageIndex = 0;
    let histSig = '';
    let histSeq = 0;
    let open = null;

    /** Loads the current page of the history; an answer to an older load is dropped. */
    async function loadHistory() {
      const seq = ++histSeq;
      const p = new URLSearchParams({ limit: String(HISTORY_PAGE) });
      const cursor = cursors[pageIndex];
      if (cursor) p.set('cursor', cursor);
      const { data, headers } = await api('GET', `/jobs/${enc(id)}/executions?${p}`);
      await mapLimit(data, 4, (e) => executionDetail(id, e.id));
      if (!v.alive || seq !== histSeq) return;
      const next = headers.get('X-Next-Cursor');
      cursors.length = pageIndex + 1;
      if (next) cursors.push(next);
      newer.disabled = pageIndex === 0;
      older.disabled = !next;
      pageLabel.textContent = `page ${pageIndex + 1}`;
      const sig = JSON.stringify([data.map((e) => [e.id, outcome(e)]), open]);
      if (sig === histSig) return;
      histSig = sig;
      histEmpty.hidden = data.length !== 0;
      fill(histBody, ...data.flatMap((e) => historyRows(e)));
    }

    function historyRows(e) {
      const d = details.get(e.id);
      const lag = d && d.scheduledAt ? new Date(e.executedAt) - new Date(d.scheduledAt) : null;
      const isOpen = open === e.id;
      const toggle = h('button', {
        type: 'button', class: 'link exec-toggle', text: isOpen ? 'Hide' : 'Details',
        attrs: { 'aria-expanded': String(isOpen) },
      });
      const row = h('tr', {
        class: `exec-row${isOpen ? ' open' : ''}`, dataset: { executionId: e.id },
        on: { click: () => { open = open === e.id ? null : e.id; histSig = ''; loadHistory().catch((err) => showError(error, err)); } },
      },
      h('td', { dataset: { label: 'Executed at' } }, h('span', { text: fmtPrecise(e.executedAt) }), ' ', h('span', { class: 'sub', dataset: { rel: e.executedAt }, text: fmtRelative(e.executedAt) })),
      h('td', { dataset: { label: 'Outcome' } }, h('span', { class: `mark ${outcome(e)}` }), ' ', outcomeWord(e), d && d.trigger === 'manual' ? h('span', { class: 'tag', text: 'manual' }) : null),
      h('td', { dataset: { label: 'HTTP' }, text: e.statusCode === null || e.statusCode === undefined ? '–' : String(e.statusCode) }),
      h('td', { dataset: { label: 'Duration' }, text: fmtMs(e.durationMs) }),
      h('td', { dataset: { label: 'Lag' }, text: lag === null ? '–' : fmtMs(lag) }),
      h('td', { class: 'cell-toggle' }, toggle));
      if (!isOpen) return [row];
      return [row, h('tr', { class: 'exec-detail', dataset: { executionId: e.id } },
        h('td', { attrs: { colspan: '6' } }, executionPanel(e, d)))];
    }

    function executionPanel(e, d) {
      if (!d) return h('p', { class: 'muted', text: 'Loading…' });
      const rows = [
        ['Execution', h('span', { class: 'mono', text: d.id })],
        ['State', d.state],
        ['Trigger', d.trigger],
        ['Attempt', String(d.attempt)],
        ['Scheduled at', fmtPrecise(d.scheduledAt)],
        ['Due at', fmtPrecise(d.dueAt)],
        ['Executed at', fmtPrecise(d.executedAt)],
        ['Lag', d.executedAt ? fmtMs(new Date(d.executedAt) - new Date(d.scheduledAt)) : '–'],
        ['HTTP status', d.statusCode === null || d.statusCode === undefined ? 'no answer' : String(d.statusCode)],
        ['Duration', fmtMs(d.durationMs)],
        ['Success', d.success === null || d.success === undefined ? '–' : d.success ? 'yes' : 'no'],
        ['Node', d.node || '–'],
      ];
      return h('div', { class: 'exec-panel' },
        h('dl', { class: 'settings compact' }, rows.flatMap(([k, val]) => [h('dt', { text: k }), h('dd', {}, val)])),
        d.error ? h('div', { class: 'exec-error' }, h('strong', { text: 'Error' }), h('pre', { text: d.error })) : null);
    }

    function page(step) {
      const target = pageIndex + step;
      if (target < 0 || target >= cursors.length) return;
      pageIndex = target;
      open = null;
      histSig = '';
      loadHistory().catch((err) => showError(error, err));
    }

    async function refresh() {
      if (!v.alive) return;
      if (!document.hidden) {
        // A job that does not exist is not asked for again.
        if (!(await loadJob())) return;
        if (job && v.alive) {
          await Promise.all([
            loadChart().catch((e) => showError(error, e)),
            pageIndex === 0 ? loadHistory().catch((e) => showError(error, e)) : null,
          ]);
        }
      }
      v.later(refresh, REFRESH_MS);
    }

    refresh();
  }

  /** An axis label in milliseconds, with a decimal when the axis spans under 10 ms. */
  function fmtTick(ms, span) {
    if (span < 10 && Math.abs(ms) < 1000) return `${Number(ms.toFixed(1))} ms`;
    return fmtMs(ms);
  }

  /** Nice round upper bound for an axis. */
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  /** Two panels, lag and duration in milliseconds, over the executions in `points`. */
  function drawChart(points) {
    const W = 640;
    const PH = 110;
    const top = 14;
    const left = 64;
    const right = 12;
    const gap = 34;
    const H = top + PH + gap + PH + 28;
    const svgEl = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': 'Lag and duration of the last executions' });
    if (!points.length) {
      svgEl.append(s('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'chart-empty' }, 'No executions yet'));
      return svgEl;
    }
    const n = points.length;
    const x = (i) => left + (n === 1 ? (W - left - right) / 2 : (i * (W - left - right)) / (n - 1));
    const panel = (y0, label, key, cls) => {
      const values = points.map((p) => p[key]).filter((val) => val !== null && val !== undefined);
      const max = niceMax(Math.max(1, ...values));
      const min = Math.min(0, ...values);
      const y = (val) => y0 + PH - ((val - min) / (max - min)) * PH;
      const g = s('g', { class: `panel ${cls}` });
      g.append(s('text', { x: left, y: y0 - 4, class: 'panel-title' }, label));
      for (const t of [min, min + (max - min) / 2, max]) {
        g.append(s('line', { x1: left, x2: W - right, y1: y(t), y2: y(t), class: 'grid' }));
        g.append(s('text', { x: left - 6, y: y(t) + 4, 'text-anchor': 'end', class: 'tick' }, fmtTick(t, max - min)));
      }
      const pts = points.map((p, i) => [p, i]).filter(([p]) => p[key] !== null && p[key] !== undefined);
      if (pts.length > 1) {
        g.append(s('polyline', { class: 'line', points: pts.map(([p, i]) => `${x(i).toFixed(1)},${y(p[key]).toFixed(1)}`).join(' ') }));
      }
      for (const [p, i] of pts) {
        g.append(s('circle', { cx: x(i).toFixed(1), cy: y(p[key]).toFixed(1), r: 3.5, class: `point ${p.outcome}`, 'data-execution-id': p.id },
          s('title', {}, `${fmtPrecise(p.at)} · ${p.word}${p.status ? ` (HTTP ${p.status})` : ''} · ${label.toLowerCase()} ${fmtMs(p[key])}`)));
      }
      if (!pts.length) g.append(s('text', { x: W / 2, y: y0 + PH / 2, 'text-anchor': 'middle', class: 'chart-empty' }, 'no data'));
      return g;
    };
    svgEl.append(panel(top, 'Lag', 'lag', 'lag'));
    svgEl.append(panel(top + PH + gap, 'Duration', 'duration', 'duration'));
    const axisY = H - 8;
    svgEl.append(s('text', { x: left, y: axisY, class: 'tick' }, fmtTime(points[0].at)));
    svgEl.append(s('text', { x: W - right, y: axisY, 'text-anchor': 'end', class: 'tick' }, fmtTime(points[n - 1].at)));
    return svgEl;
  }

  // ---------------------------------------------------------------------------------
  // The create and edit form.

  const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
  /** Headers cronhook or the connection owns (the server's list). */
  const RESERVED_HEADERS = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive',
    'upgrade', 'te', 'trailer', 'idempotency-key']);

  /** The IANA zones this browser knows, for the zone field's suggestions. */
  function zones() {
    try { return Intl.supportedValuesOf('timeZone'); } catch { return []; }
  }

  function formView(main, id) {
    const v = newView();
    const editing = id !== null;
    let original = null;
    let headersTouched = !editing;
    let submitted = false;
    const touched = new Set();

    const field = (name, label, input, hint) => {
      const err = h('p', { class: 'field-error', id: `err-${name}`, hidden: true, attrs: { role: 'alert' } });
      const wrap = h('div', { class: `field field-${name}` },
        h('label', { htmlFor: input.id, text: label }), input, hint ? h('p', { class: 'hint', text: hint }) : null, err);
      return { wrap, err, input };
    };
    const input = (name, props) => h('input', { id: `f-${name}`, name, ...props, on: { input: () => { touched.add(name); validate(); }, ...(props && props.on) } });
    const select = (name, options) => h('select', { id: `f-${name}`, name, on: { change: () => { touched.add(name); validate(); } } },
      options.map(([val, text]) => h('option', { value: val, text })));

    const f = {
      name: field('name', 'Name', input('name', { type: 'text', maxLength: 400, placeholder: 'e.g. nightly report', autocomplete: 'off' })),
      schedule: field('schedule', 'Schedule', input('schedule', { type: 'text', class: 'mono', placeholder: '*/10 * * * * *', autocomplete: 'off', spellcheck: false, required: true }),
        'Six fields, seconds first (five fields: second 0), e.g. */10 * * * * * or 0 30 9 * * MON-FRI.'),
      timezone: field('timezone', 'Time zone', input('timezone', { type: 'text', placeholder: 'UTC', autocomplete: 'off', spellcheck: false, attrs: { list: 'zone-list' } })),
      api: field('api', 'Target URL', input('api', { type: 'url', class: 'mono', placeholder: 'https://example.com/hook', autocomplete: 'off', spellcheck: false, required: true })),
      method: field('method', 'Method', select('method', [['POST', 'POST'], ['GET', 'GET'], ['PUT', 'PUT'], ['PATCH', 'PATCH'], ['DELETE', 'DELETE']])),
      type: field('type', 'Delivery', select('type', [['ATLEAST_ONCE', 'At least once'], ['ATMOST_ONCE', 'At most once']])),
      body: field('body', 'Body', h('textarea', { id: 'f-body', name: 'body', rows: 4, class: 'mono', placeholder: 'Empty: cronhook sends its own JSON', spellcheck: false, on: { input: () => { touched.add('body'); validate(); } } })),
      timeoutMs: field('timeoutMs', 'Timeout (ms)', input('timeoutMs', { type: 'number', min: 1, max: 600000, step: 1, placeholder: 'server default' })),
      maxAttempts: field('maxAttempts', 'Attempts', input('maxAttempts', { type: 'number', min: 1, max: 100, step: 1, placeholder: 'default' })),
      backoffMs: field('backoffMs', 'First retry after (ms)', input('backoffMs', { type: 'number', min: 0, max: 86400000, step: 1, placeholder: 'default' })),
      maxBackoffMs: field('maxBackoffMs', 'Longest retry delay (ms)', input('maxBackoffMs', { type: 'number', min: 0, max: 86400000, step: 1, placeholder: 'default' })),
      misfirePolicy: field('misfirePolicy', 'Misfire policy', select('misfirePolicy', [['one', 'one: a single catch-up call'], ['all', 'all: a call per missed fire'], ['none', 'none: skip missed fires']])),
      concurrencyPolicy: field('concurrencyPolicy', 'Concurrency', select('concurrencyPolicy', [['allow', 'allow: calls may overlap'], ['forbid', 'forbid: skip a fire while a call runs']])),
      signingSecret: field('signingSecret', 'Signing secret', input('signingSecret', { type: 'password', autocomplete: 'new-password', placeholder: editing ? 'unchanged' : 'none: the server’s, if any' }),
        '16 to 256 visible ASCII characters; never shown again.'),
    };
    const enabled = h('input', { type: 'checkbox', id: 'f-enabled', checked: true, on: { change: validate } });
    const clearSecret = h('input', { type: 'checkbox', id: 'f-clear-secret', on: { change: validate } });
    const clearSecretWrap = h('label', { class: 'check', hidden: true }, clearSecret, ' Remove its own secret');

    // Headers: rows of name and value.
    const headerRows = h('div', { class: 'header-rows', id: 'f-headers' });
    const headersErr = h('p', { class: 'field-error', id: 'err-headers', hidden: true, attrs: { role: 'alert' } });
    const headersHint = h('p', { class: 'hint', id: 'headers-hint', hidden: true,
      text: 'Header values are write-only and not shown. Leave the headers alone to keep them; to change them, enter every value again.' });
    const addHeader = (name, value, placeholder) => {
      const row = h('div', { class: 'header-row' },
        h('input', { type: 'text', class: 'mono header-name', placeholder: 'Name', value: name || '', attrs: { 'aria-label': 'Header name' }, autocomplete: 'off', spellcheck: false, on: { input: headerInput } }),
        h('input', { type: 'text', class: 'mono header-value', placeholder: placeholder || 'Value', value: value || '', attrs: { 'aria-label': 'Header value' }, autocomplete: 'off', spellcheck: false, on: { input: headerInput } }),
        h('button', { type: 'button', class: 'ghost remove-header', text: 'Remove', on: { click: () => { row.remove(); headerInput(); } } }));
      headerRows.append(row);
      return row;
    };
    function headerInput() { headersTouched = true; touched.add('headers'); validate(); }
    const addHeaderBtn = h('button', { type: 'button', id: 'add-header', text: 'Add header', on: { click: () => { const r = addHeader(); headerInput(); $('.header-name', r).focus(); } } });

    // The preview of the next instants.
    const preview = h('ol', { class: 'preview', id: 'preview' });
    const previewNote = h('p', { class: 'hint', id: 'preview-note', text: 'Type a schedule to see its next instants.' });
    const formError = h('div', { class: 'notice error', id: 'form-error', hidden: true, attrs: { role: 'alert' } });
    const save = h('button', { type: 'submit', id: 'save', class: 'primary', text: editing ? 'Save changes' : 'Create job' });
    const datalist = h('datalist', { id: 'zone-list' }, zones().map((z) => h('option', { value: z })));

    const form = h('form', { id: 'job-form', class: 'job-form', noValidate: true, autocomplete: 'off', on: { submit } },
      h('div', { class: 'form-grid' },
        h('fieldset', { class: 'card' }, h('legend', { text: 'When' }), f.name.wrap, f.schedule.wrap,
          h('div', { class: 'preview-box' }, h('h3', { text: 'Next 5 fires' }), previewNote, preview), f.timezone.wrap, datalist),
        h('fieldset', { class: 'card' }, h('legend', { text: 'Call' }), f.api.wrap,
          h('div', { class: 'row2' }, f.method.wrap, f.type.wrap),
          h('div', { class: 'field field-headers' }, h('label', { text: 'Headers' }), headersHint, headerRows, addHeaderBtn, headersErr),
          f.body.wrap, f.timeoutMs.wrap),
        h('fieldset', { class: 'card' }, h('legend', { text: 'Policies' }),
          h('div', { class: 'row3' }, f.maxAttempts.wrap, f.backoffMs.wrap, f.maxBackoffMs.wrap),
          f.misfirePolicy.wrap, f.concurrencyPolicy.wrap,
          h('div', { class: 'field' }, h('label', { class: 'check' }, enabled, ' Enabled (a disabled job is created paused)')),
          f.signingSecret.wrap, clearSecretWrap)),
      formError,
      h('div', { class: 'form-actions sticky' }, save, h('a', { class: 'button ghost', href: editing ? `#/jobs/${id}` : '#/', text: 'Cancel' })));

    main.append(
      h('nav', { class: 'crumbs' }, h('a', { href: '#/', text: 'Jobs' }), ' / ', editing ? h('a', { href: `#/jobs/${id}`, id: 'crumb-name', text: `…${id.slice(-8)}` }) : 'New job'),
      h('h1', { id: 'form-title', text: editing ? 'Edit job' : 'New job' }),
      form);

    f.schedule.input.addEventListener('input', schedulePreview);
    f.timezone.input.addEventListener('input', schedulePreview);
    f.method.input.addEventListener('change', validate);

    const val = (k) => f[k].input.value;
    const num = (k) => (val(k).trim() === '' ? null : Number(val(k)));

    /** Client-side checks; returns `{field: message}`. */
    function problems() {
      const p = {};
      const name = val('name');
      if (name && ([...name].length > 200 || !/\S/.test(name))) p.name = 'A name has 1 to 200 characters, not only spaces.';
      if (/[\u0000-\u001f\u007f]/.test(name)) p.name = 'A name has no control characters.';
      const schedule = val('schedule');
      if (!schedule.trim()) p.schedule = 'A schedule is required.';
      else if (new TextEncoder().encode(schedule).length > 256) p.schedule = 'A schedule has at most 256 bytes.';
      else if (previewError) p.schedule = previewError;
      if (tzError) p.timezone = tzError;
      const url = val('api').trim();
      if (!url) p.api = 'A target URL is required.';
      else {
        let u = null;
        try { u = new URL(url); } catch { u = null; }
        if (!u || !/^https?:$/.test(u.protocol)) p.api = 'The target is an http:// or https:// URL.';
        else if (new TextEncoder().encode(url).length > 2048) p.api = 'A URL has at most 2,048 bytes.';
      }
      const body = f.body.input.value;
      if (body && val('method') === 'GET') p.body = 'A GET call has no body.';
      if (new TextEncoder().encode(body).length > 32768) p.body = 'A body has at most 32 KiB.';
      if (body.includes('\u0000')) p.body = 'A body has no NUL characters.';
      const timeout = num('timeoutMs');
      if (timeout !== null && !(Number.isInteger(timeout) && timeout >= 1 && timeout <= 600000)) p.timeoutMs = 'A whole number from 1 to 600000.';
      const attempts = num('maxAttempts');
      if (attempts !== null && !(Number.isInteger(attempts) && attempts >= 1 && attempts <= 100)) p.maxAttempts = 'A whole number from 1 to 100.';
      for (const k of ['backoffMs', 'maxBackoffMs']) {
        const x = num(k);
        if (x !== null && !(Number.isInteger(x) && x >= 0 && x <= 86400000)) p[k] = 'A whole number from 0 to 86400000.';
      }
      const secret = val('signingSecret');
      if (secret && !/^[!-~]{16,256}$/.test(secret)) p.signingSecret = '16 to 256 visible ASCII characters, no spaces.';
      const hp = headerProblems();
      if (hp) p.headers = hp;
      return p;
    }

    function headerProblems() {
      if (!headersTouched) return null;
      const rows = [...headerRows.querySelectorAll('.header-row')];
      if (rows.length > 50) return 'At most 50 headers.';
      const seen = new Set();
      for (const row of rows) {
        const name = $('.header-name', row).value.trim();
        const value = $('.header-value', row).value;
        if (!name && !value) continue;
        if (!name) return 'Every header needs a name.';
        if (!HEADER_NAME.test(name) || name.length > 256) return `“${name}” is not a header name.`;
        const lower = name.toLowerCase();
        if (RESERVED_HEADERS.has(lower) || lower.startsWith('x-cronhook-')) return `${name} is set by cronhook itself.`;
        if (seen.has(lower)) return `${name} is given twice.`;
        seen.add(lower);
        if (!/^[\t -~]*$/.test(value) || value.length > 4096) return `The value of ${name} has at most 4096 visible ASCII characters.`;
        if (editing && !value) return `Enter the value of ${name}: values are not shown, so changed headers are all sent again.`;
      }
      return null;
    }

    function validate() {
      const p = problems();
      for (const [k, fld] of Object.entries(f)) {
        // The API's answers about the schedule and zone show at once; the rest once touched.
        const fromApi = (k === 'schedule' && previewError) || (k === 'timezone' && tzError);
        const show = p[k] && (submitted || touched.has(k) || fromApi);
        fld.err.textContent = show ? p[k] : '';
        fld.err.hidden = !show;
        fld.input.setAttribute('aria-invalid', show ? 'true' : 'false');
      }
      headersErr.textContent = p.headers || '';
      headersErr.hidden = !p.headers;
      f.body.input.disabled = val('method') === 'GET' && !f.body.input.value;
      f.signingSecret.input.disabled = clearSecret.checked;
      return p;
    }

    // Preview of the next instants, debounced; a stale answer is dropped.
    let previewTimer = null;
    let previewSeq = 0;
    let previewError = null;
    let tzError = null;
    function schedulePreview() {
      clearTimeout(previewTimer);
      previewTimer = setTimeout(runPreview, PREVIEW_DEBOUNCE_MS);
    }
    async function runPreview() {
      const seq = ++previewSeq;
      const expr = val('schedule');
      const tz = val('timezone').trim() || 'UTC';
      if (!expr.trim()) {
        previewError = null;
        tzError = null;
        preview.replaceChildren();
        previewNote.textContent = 'Type a schedule to see its next instants.';
        previewNote.hidden = false;
        validate();
        return;
      }
      try {
        const { data } = await api('GET', `/cron/next?${new URLSearchParams({ expr, tz, n: '5' })}`);
        if (seq !== previewSeq || !v.alive) return;
        previewError = null;
        tzError = null;
        fill(preview, ...data.next.map((iso) => h('li', { dataset: { instant: iso } },
          h('span', { class: 'mono', text: fmtInZone(iso, data.timezone) }), ' ', h('span', { class: 'sub', dataset: { rel: iso }, text: fmtRelative(iso) }))));
        previewNote.textContent = typeof data.description === 'string' && data.description ? data.description : '';
        previewNote.hidden = !previewNote.textContent;
        if (!data.next.length) {
          previewNote.textContent = 'This schedule has no instants left.';
          previewNote.hidden = false;
        }
      } catch (e) {
        if (seq !== previewSeq || !v.alive) return;
        preview.replaceChildren();
        previewNote.hidden = true;
        previewError = null;
        tzError = null;
        if (e.field === 'tz') tzError = e.message;
        else if (e.status === 400) previewError = e.message;
        else if (e.status !== 401) {
          previewNote.textContent = `No preview: ${e.message}`;
          previewNote.hidden = false;
        }
      }
      validate();
    }

    /** The request body of the form: a whole job, or the changed fields of one. */
    function body() {
      const out = {};
      const str = (k) => val(k);
      const optional = (key, value) => {
        if (value !== null && value !== '') out[key] = value;
        else if (editing && original && original[key] !== null && original[key] !== undefined) out[key] = null;
      };
      optional('name', str('name'));
      out.schedule = str('schedule').trim();
      if (str('timezone').trim()) out.timezone = str('timezone').trim();
      out.api = str('api').trim();
      out.method = str('method');
      out.type = str('type');
      optional('body', f.body.input.value);
      optional('timeoutMs', num('timeoutMs'));
      const retry = {};
      for (const k of ['maxAttempts', 'backoffMs', 'maxBackoffMs']) if (num(k) !== null) retry[k] = num(k);
      optional('retry', Object.keys(retry).length ? retry : null);
      out.misfirePolicy = str('misfirePolicy');
      out.concurrencyPolicy = str('concurrencyPolicy');
      out.enabled = enabled.checked;
      if (str('signingSecret')) out.signingSecret = str('signingSecret');
      else if (editing && clearSecret.checked) out.signingSecret = null;
      if (headersTouched) {
        const headers = {};
        for (const row of headerRows.querySelectorAll('.header-row')) {
          const name = $('.header-name', row).value.trim();
          if (name) headers[name] = $('.header-value', row).value;
        }
        if (Object.keys(headers).length) out.headers = headers;
        else if (editing && original && Object.keys(original.headers || {}).length) out.headers = null;
      }
      if (editing && original) {
        // Only what changed: a field changed meanwhile by someone else is left as it is.
        const norm = (x) => JSON.stringify(x && typeof x === 'object'
          ? Object.fromEntries(Object.entries(x).filter(([, y]) => y !== null && y !== undefined))
          : x ?? null);
        for (const k of Object.keys(out)) {
          if (k !== 'headers' && k !== 'signingSecret' && norm(out[k]) === norm(original[k])) delete out[k];
        }
      }
      return out;
    }

    async function submit(ev) {
      ev.preventDefault();
      submitted = true;
      formError.hidden = true;
      clearTimeout(previewTimer);
      if (val('schedule').trim()) await runPreview();
      const p = validate();
      const bad = Object.keys(p);
      if (bad.length) {
        formError.textContent = 'Check the fields marked in red.';
        formError.hidden = false;
        const first = bad[0] === 'headers' ? $('.header-row input', headerRows) : f[bad[0]] && f[bad[0]].input;
        if (first) first.focus();
        return;
      }
      save.disabled = true;
      try {
        if (editing) {
          await api('PATCH', `/jobs/${enc(id)}`, body());
          toast('Saved');
          location.hash = `#/jobs/${id}`;
        } else {
          const { data } = await api('POST', '/jobs', body());
          toast('Job created');
          location.hash = `#/jobs/${data.jobId}`;
        }
      } catch (e) {
        if (e.status === 401) return;
        fill(formError, h('strong', { text: e.status ? `Refused (${e.status}${e.code ? ` ${e.code}` : ''}): ` : 'Error: ' }), e.message);
        formError.hidden = false;
        const key = e.field && String(e.field).split(/[.[]/)[0];
        const target = key === 'headers' ? headersErr : key && f[key === 'retry' ? 'maxAttempts' : key];
        if (target && target.err) {
          target.err.textContent = e.message;
          target.err.hidden = false;
          target.input.focus();
        } else if (target === headersErr) {
          headersErr.textContent = e.message;
          headersErr.hidden = false;
        }
      } finally {
        save.disabled = false;
      }
    }

    /** Fills the form from a job being edited. */
    function fillForm(job) {
      original = job;
      f.name.input.value = job.name || '';
      f.schedule.input.value = job.schedule;
      f.timezone.input.value = job.timezone || '';
      f.api.input.value = job.api;
      f.method.input.value = job.method;
      f.type.input.value = job.type;
      f.body.input.value = job.body || '';
      f.timeoutMs.input.value = job.timeoutMs ?? '';
      const retry = job.retry || {};
      f.maxAttempts.input.value = retry.maxAttempts ?? '';
      f.backoffMs.input.value = retry.backoffMs ?? '';
      f.maxBackoffMs.input.value = retry.maxBackoffMs ?? '';
      f.misfirePolicy.input.value = job.misfirePolicy;
      f.concurrencyPolicy.input.value = job.concurrencyPolicy;
      enabled.checked = job.enabled;
      clearSecretWrap.hidden = !job.hasSigningSecret;
      const names = Object.keys(job.headers || {});
      headersHint.hidden = names.length === 0;
      for (const n of names) addHeader(n, '', 'unchanged (hidden)');
      $('#form-title').textContent = `Edit ${jobLabel(job)}`;
      $('#crumb-name').textContent = jobLabel(job);
      runPreview();
    }

    // Keeps the preview ahead of the clock: once its first instant passes, it is asked again.
    const keepFresh = () => {
      const first = $('li', preview);
      if (first && new Date(first.dataset.instant).getTime() < Date.now()) runPreview();
      v.later(keepFresh, 1000);
    };
    v.later(keepFresh, 1000);

    if (editing) {
      save.disabled = true;
      api('GET', `/jobs/${enc(id)}`).then(({ data }) => {
        if (!v.alive) return;
        fillForm(data);
        save.disabled = false;
      }).catch((e) => {
        if (!v.alive) return;
        showError(formError, e);
      });
    } else {
      f.name.input.focus();
    }
    validate();
  }

  // ---------------------------------------------------------------------------------
  // Start.

  function start() {
    $('#token-form').addEventListener('submit', submitToken);
    $('#forget-token').addEventListener('click', () => {
      token.forget();
      toast('Token forgotten');
      route();
    });
    window.addEventListener('hashchange', () => { if (!locked) route(); });
    document.addEventListener('visibilitychange', () => { if (!document.hidden) refreshStatus(); });
    syncForget();
    setInterval(tick, 1000);
    route();
    refreshStatus();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();

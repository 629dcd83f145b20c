import { createHash } from 'node:crypto';

/**
 * The operator's dashboard (`GET /`): one static page, plain JavaScript and CSS, no build step and nothing loaded
 * from elsewhere. It asks for an API key (kept in localStorage, sent as `x-api-key`) and polls the REST API:
 * `/api/stats`, `/api/executions`, `/api/operations?status=FAILED`, `/api/jobs/executions`. Everything it shows is written with
 * `textContent` or `setAttribute`, never as HTML, because operation errors carry database messages.
 *
 * Kept as a TypeScript module so that `tsc` ships it in dist/ with the rest of the code.
 */

const STYLE = String.raw`
:root {
  --ink: #1f2430; --muted: #667085; --line: #e4e7ec; --paper: #ffffff; --ground: #f4f5f7;
  --pending: #b54708; --pending-bg: #fef0c7; --completed: #067647; --completed-bg: #dcfae6;
  --failed: #b42318; --failed-bg: #fee4e2; --cancelled: #475467; --cancelled-bg: #eaecf0; --accent: #2e5bba;
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--ground); color: var(--ink); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
header { display: flex; flex-wrap: wrap; align-items: center; gap: 12px 24px; padding: 14px 24px; background: var(--paper); border-bottom: 1px solid var(--line); }
header h1 { margin: 0; font-size: 18px; font-weight: 650; }
.status { color: var(--muted); flex: 1; min-width: 200px; }
.status.ok::before { content: ""; display: inline-block; width: 8px; height: 8px; margin-right: 6px; border-radius: 50%; background: var(--completed); }
.status.error { color: var(--failed); font-weight: 600; }
form { display: flex; gap: 8px; }
input { width: 260px; padding: 6px 10px; border: 1px solid #d0d5dd; border-radius: 6px; font: inherit; }
button { padding: 6px 12px; border: 1px solid #d0d5dd; border-radius: 6px; background: var(--paper); color: var(--ink); font: inherit; cursor: pointer; }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
button:disabled { opacity: .55; cursor: default; }
main { padding: 20px 24px 8px; display: grid; gap: 20px; max-width: 1400px; }
.notice { margin: 0; padding: 8px 12px; border-radius: 6px; background: #eff4ff; color: #1d3f8a; }
.notice.error { background: var(--failed-bg); color: var(--failed); }
.notice:empty { display: none; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; }
.card { background: var(--paper); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; border-top: 3px solid var(--line); }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 26px; font-weight: 650; font-variant-numeric: tabular-nums; }
.card.PENDING { border-top-color: var(--pending); }
.card.COMPLETED { border-top-color: var(--completed); }
.card.FAILED { border-top-color: var(--failed); }
.card.CANCELLED { border-top-color: var(--cancelled); }
.row { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 20px; }
@media (max-width: 1000px) { .row { grid-template-columns: minmax(0, 1fr); } }
.panel { background: var(--paper); border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; overflow-x: auto; }
.panel h2 { margin: 0 0 10px; font-size: 15px; font-weight: 650; }
.panel table + h2 { margin-top: 18px; }
.panel h2 small { margin-left: 8px; color: var(--muted); font-weight: 400; font-size: 12px; }
svg { display: block; width: 100%; height: auto; }
svg text { font-size: 11px; fill: var(--muted); }
svg .grid { stroke: var(--line); }
svg .completed { fill: #32a467; }
svg .failed { fill: #e5484d; }
svg .empty { font-size: 13px; }
.legend { display: flex; gap: 16px; margin-top: 6px; color: var(--muted); font-size: 12px; }
.legend span::before { content: ""; display: inline-block; width: 10px; height: 10px; margin-right: 5px; border-radius: 2px; vertical-align: -1px; }
.legend .completed::before { background: #32a467; }
.legend .failed::before { background: #e5484d; }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th { text-align: left; color: var(--muted); font-weight: 600; font-size: 12px; border-bottom: 1px solid var(--line); padding: 6px 8px; white-space: nowrap; }
td { border-bottom: 1px solid var(--line); padding: 6px 8px; vertical-align: top; }
tbody tr:last-child td { border-bottom: 0; }
th.n, td.n { text-align: right; }
td.zero { color: #c0c5cf; }
td.message { max-width: 520px; overflow-wrap: anywhere; font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; }
td.empty { color: var(--muted); text-align: center; padding: 14px; }
code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; }
.badge.PENDING { color: var(--pending); background: var(--pending-bg); }
.badge.COMPLETED { color: var(--completed); background: var(--completed-bg); }
.badge.FAILED { color: var(--failed); background: var(--failed-bg); }
.badge.CANCELLED, .badge.ABANDONED { color: var(--cancelled); background: var(--cancelled-bg); }
.badge.STARTING, .badge.STARTED, .badge.STOPPING { color: var(--accent); background: #eff4ff; }
.badge.STOPPED { color: var(--pending); background: var(--pending-bg); }
.progress { display: inline-block; width: 160px; height: 8px; margin-right: 8px; border-radius: 4px; background: var(--line); vertical-align: middle; overflow: hidden; }
.progress > span { display: block; height: 100%; background: var(--accent); }
.progress.unknown > span { width: 30%; opacity: .5; }
td.actions button { padding: 2px 10px; font-size: 12px; }
footer { padding: 4px 24px 20px; color: var(--muted); font-size: 12px; }
footer a { color: var(--accent); }
`;

const SCRIPT = String.raw`
(function () {
  'use strict';
  var REFRESH_MS = 3000;
  var KEY_STORAGE = 'batch-service.api-key';
  var STATUSES = ['PENDING', 'COMPLETED', 'FAILED', 'CANCELLED'];
  var CHART = { width: 720, height: 210, left: 44, right: 8, top: 12, bottom: 26, minutes: 15 };
  var SVG_NS = 'http://www.w3.org/2000/svg';
  var numbers = new Intl.NumberFormat('en-US');
  var timer = null;
  var generation = 0;

  function byId(id) { return document.getElementById(id); }

  /** An element with attributes and children; strings become text nodes, never HTML. */
  function el(tag, attributes, children) {
    var node = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) { node.setAttribute(name, attributes[name]); });
    (children || []).forEach(function (child) {
      node.appendChild(typeof child === 'object' && child !== null ? child : document.createTextNode(child === null || child === undefined ? '' : String(child)));
    });
    return node;
  }

  function svg(tag, attributes, text) {
    var node = document.createElementNS(SVG_NS, tag);
    Object.keys(attributes || {}).forEach(function (name) { node.setAttribute(name, String(attributes[name])); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function count(value) { return numbers.format(value); }
  function numberCell(value) { return el('td', { class: value === 0 ? 'n zero' : 'n' }, [count(value)]); }
  function badge(status) { return el('span', { class: 'badge ' + status }, [status]); }
  function clock(iso) { return iso ? new Date(iso).toLocaleTimeString('en-GB', { hour12: false }) : ''; }
  function age(seconds) {
    var s = Math.round(seconds);
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
    return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  }

  function apiKey() { return localStorage.getItem(KEY_STORAGE) || ''; }

  async function api(method, path) {
    var response = await fetch(path, { method: method, headers: { 'x-api-key': apiKey(), accept: 'application/json' } });
    var text = await response.text();
    var body = null;
    try { body = text ? JSON.parse(text) : null; } catch (ignored) { body = null; }
    if (!response.ok) {
      var error = new Error((body && body.message) || response.status + ' ' + response.statusText);
      error.code = body && body.code;
      throw error;
    }
    return body;
  }

  function showStatus(text, kind) {
    var status = byId('status');
    status.textContent = text;
    status.className = 'status ' + kind;
  }

  function notify(text, kind) {
    var notice = byId('notice');
    notice.textContent = text;
    notice.className = 'notice ' + (kind || '');
  }

  function fill(tbody, rows, columns, emptyText) {
    tbody.replaceChildren.apply(tbody, rows.length ? rows : [el('tr', {}, [el('td', { class: 'empty', colspan: String(columns) }, [emptyText])])]);
  }

  function renderStats(stats) {
    STATUSES.forEach(function (status) { byId('count-' + status).textContent = count(stats.byStatus[status]); });
    byId('oldest-pending-age').textContent = age(stats.oldestPendingAgeSeconds);
    byId('outbox-backlog').textContent = count(stats.outboxBacklog);
    var targets = {};
    stats.byTarget.forEach(function (row) {
      targets[row.target] = targets[row.target] || { PENDING: 0, COMPLETED: 0, FAILED: 0, CANCELLED: 0 };
      targets[row.target][row.status] = row.count;
    });
    var rows = Object.keys(targets).sort().map(function (target) {
      var cells = [el('td', {}, [el('code', {}, [target])])];
      STATUSES.forEach(function (status) {
        var cell = numberCell(targets[target][status]);
        cell.setAttribute('data-status', status);
        cells.push(cell);
      });
      return el('tr', { 'data-testid': 'target-row', 'data-target': target }, cells);
    });
    fill(byId('targets'), rows, 5, 'No operations yet');
  }

  /** Stacked bars per minute (completed below, failed on top) over the last 15 minutes. */
  function renderThroughput(throughput) {
    var chart = byId('throughput');
    var byMinute = {};
    var latest = Math.floor(Date.now() / 60000) * 60000;
    throughput.forEach(function (t) {
      var minute = Date.parse(t.minute);
      byMinute[minute] = t;
      latest = Math.max(latest, minute);
    });
    var bars = [];
    var completed = 0;
    var failed = 0;
    for (var i = CHART.minutes - 1; i >= 0; i--) {
      var minute = latest - i * 60000;
      var t = byMinute[minute] || { completed: 0, failed: 0 };
      completed += t.completed;
      failed += t.failed;
      bars.push({ minute: minute, completed: t.completed, failed: t.failed });
    }
    var top = Math.max.apply(null, bars.map(function (b) { return b.completed + b.failed; }));
    var scale = niceCeiling(top);
    var plotWidth = CHART.width - CHART.left - CHART.right;
    var plotHeight = CHART.height - CHART.top - CHART.bottom;
    var step = plotWidth / CHART.minutes;
    var nodes = [];
    [0, 0.5, 1].forEach(function (fraction) {
      var y = CHART.top + plotHeight * (1 - fraction);
      nodes.push(svg('line', { class: 'grid', x1: CHART.left, x2: CHART.width - CHART.right, y1: y, y2: y }));
      nodes.push(svg('text', { x: CHART.left - 6, y: y + 4, 'text-anchor': 'end' }, count(Math.round(scale * fraction))));
    });
    bars.forEach(function (bar, index) {
      var x = CHART.left + index * step + step * 0.15;
      var width = step * 0.7;
      var completedHeight = plotHeight * bar.completed / scale;
      var failedHeight = plotHeight * bar.failed / scale;
      var base = CHART.top + plotHeight;
      var label = clock(new Date(bar.minute).toISOString()).slice(0, 5);
      var group = svg('g', { 'data-testid': 'throughput-bar', 'data-completed': bar.completed, 'data-failed': bar.failed });
      group.appendChild(svg('title', {}, label + ': ' + count(bar.completed) + ' completed, ' + count(bar.failed) + ' failed'));
      group.appendChild(svg('rect', { class: 'completed', x: x, width: width, y: base - completedHeight, height: completedHeight }));
      group.appendChild(svg('rect', { class: 'failed', x: x, width: width, y: base - completedHeight - failedHeight, height: failedHeight }));
      nodes.push(group);
      if (index % 3 === 2 || index === CHART.minutes - 1) {
        nodes.push(svg('text', { x: x + width / 2, y: CHART.height - 8, 'text-anchor': 'middle' }, label));
      }
    });
    if (completed + failed === 0) {
      nodes.push(svg('text', { class: 'empty', x: CHART.left + plotWidth / 2, y: CHART.top + plotHeight / 2, 'text-anchor': 'middle' }, 'Nothing settled in the last 15 minutes'));
    }
    chart.replaceChildren.apply(chart, nodes);
    chart.setAttribute('data-completed', String(completed));
    chart.setAttribute('data-failed', String(failed));
    byId('throughput-total').textContent = count(completed) + ' completed, ' + count(failed) + ' failed';
  }

  function niceCeiling(value) {
    if (value <= 4) return 4;
    var magnitude = Math.pow(10, Math.floor(Math.log10(value)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * magnitude >= value) return steps[i] * magnitude;
    return 10 * magnitude;
  }

  function renderChunks(items) {
    var rows = items.map(function (e) {
      var skips = e.readSkipCount + e.processSkipCount + e.writeSkipCount;
      return el('tr', { 'data-testid': 'chunk-row', 'data-id': e.id }, [
        el('td', {}, [e.id]),
        el('td', {}, [badge(e.status)]),
        el('td', {}, [clock(e.startedAt)]),
        el('td', { class: 'n' }, [count(Date.parse(e.endedAt) - Date.parse(e.startedAt)) + ' ms']),
        numberCell(e.readCount),
        numberCell(e.writeCount),
        numberCell(e.filterCount),
        numberCell(skips),
        numberCell(e.commitCount),
        numberCell(e.rollbackCount),
        el('td', { class: 'message' }, [e.exitMessage || '']),
      ]);
    });
    fill(byId('chunks'), rows, 11, 'No chunks yet');
  }

  function renderFailed(items, total) {
    var rows = items.map(function (o) {
      var retry = el('button', { type: 'button', 'data-testid': 'retry-button', 'data-id': o.id }, ['Retry']);
      retry.addEventListener('click', function () { retryOperation(o.id, retry); });
      return el('tr', { 'data-testid': 'failed-row', 'data-id': o.id }, [
        el('td', {}, [o.id]),
        el('td', {}, [el('code', {}, [o.target])]),
        el('td', {}, [o.type]),
        el('td', {}, [o.label || '']),
        el('td', { 'data-testid': 'failed-error-code' }, [el('code', {}, [o.error ? o.error.code : ''])]),
        el('td', { class: 'message', 'data-testid': 'failed-error-message' }, [o.error ? o.error.message : '']),
        el('td', {}, [clock(o.settledAt)]),
        el('td', {}, [retry]),
      ]);
    });
    fill(byId('failed'), rows, 8, 'No failed operations');
    byId('failed-note').textContent = total > items.length ? 'newest ' + items.length + ' of ' + count(total) : '';
  }

  var RUNNING = ['STARTING', 'STARTED', 'STOPPING'];

  function written(execution) {
    return execution.steps.reduce(function (sum, step) { return sum + step.writeCount; }, 0);
  }

  /** A bar of done / total, with the rate and the time left; a bar without an end when the total is unknown. */
  function progressCell(progress) {
    if (!progress) return el('td', { 'data-testid': 'job-progress' }, ['']);
    var share = progress.total ? Math.min(1, progress.done / progress.total) : null;
    var fillNode = el('span', {}, []);
    if (share !== null) fillNode.style.width = (share * 100).toFixed(1) + '%'; // CSSOM: the policy allows no style attribute
    var bar = el('span', { class: share === null ? 'progress unknown' : 'progress' }, [fillNode]);
    var text = (share === null ? count(progress.done) + ' ' + progress.unit : (share * 100).toFixed(0) + ' %') +
      (progress.perSecond ? ' · ' + count(Math.round(progress.perSecond)) + ' ' + progress.unit + '/s' : '') +
      (progress.etaSeconds !== null && progress.etaSeconds !== undefined ? ' · ' + age(progress.etaSeconds) + ' left' : '');
    return el('td', { 'data-testid': 'job-progress', 'data-done': String(progress.done), 'data-total': String(progress.total) }, [bar, text]);
  }

  function jobAction(execution) {
    var action = RUNNING.indexOf(execution.status) >= 0 && execution.status !== 'STOPPING' ? 'stop'
      : execution.status === 'FAILED' || execution.status === 'STOPPED' ? 'restart' : null;
    if (!action) return el('td', { class: 'actions' }, []);
    var button = el('button', { type: 'button', 'data-testid': 'job-' + action, 'data-id': execution.id }, [action === 'stop' ? 'Stop' : 'Restart']);
    button.addEventListener('click', function () { controlJob(execution.id, action, button); });
    return el('td', { class: 'actions' }, [button]);
  }

  function renderJobs(items) {
    var running = items.filter(function (e) { return RUNNING.indexOf(e.status) >= 0; });
    var ended = items.filter(function (e) { return RUNNING.indexOf(e.status) < 0; });
    fill(byId('jobs-running'), running.map(function (e) {
      return el('tr', { 'data-testid': 'job-running-row', 'data-id': e.id, 'data-status': e.status }, [
        el('td', {}, [e.id]),
        el('td', {}, [el('code', {}, [e.job])]),
        el('td', {}, [badge(e.status)]),
        progressCell(e.progress),
        el('td', {}, [clock(e.startedAt)]),
        numberCell(written(e)),
        jobAction(e),
      ]);
    }), 7, 'No job running');
    fill(byId('jobs-history'), ended.map(function (e) {
      return el('tr', { 'data-testid': 'job-history-row', 'data-id': e.id, 'data-status': e.status }, [
        el('td', {}, [e.id]),
        el('td', {}, [el('code', {}, [e.job])]),
        el('td', {}, [badge(e.status)]),
        el('td', {}, [e.exitStatus ? e.exitStatus.code : '']),
        el('td', {}, [clock(e.startedAt)]),
        el('td', {}, [clock(e.endedAt)]),
        numberCell(written(e)),
        el('td', { class: 'n' }, [count(e.startCount)]),
        el('td', { class: 'message' }, [e.exitStatus && e.exitStatus.description ? e.exitStatus.description : '']),
        jobAction(e),
      ]);
    }), 10, 'No job has ended yet');
  }

  async function controlJob(id, action, button) {
    button.disabled = true;
    try {
      var execution = await api('POST', '/api/jobs/executions/' + encodeURIComponent(id) + '/' + action);
      notify(action === 'stop' ? 'Job execution ' + id + ' is ' + execution.status + '.' : 'Job execution ' + id + ' restarted as ' + execution.id + '.', '');
      await refresh();
    } catch (error) {
      notify((action === 'stop' ? 'Stop' : 'Restart') + ' of job execution ' + id + ' failed: ' + error.message, 'error');
      button.disabled = false;
    }
  }

  async function retryOperation(id, button) {
    button.disabled = true;
    button.textContent = 'Retrying…';
    try {
      var operation = await api('POST', '/api/operations/' + encodeURIComponent(id) + '/retry');
      notify('Operation ' + operation.id + ' is ' + operation.status + ' again.', '');
      await refresh();
    } catch (error) {
      notify('Retry of operation ' + id + ' failed: ' + error.message, 'error');
      button.disabled = false;
      button.textContent = 'Retry';
    }
  }

  async function refresh() {
    var mine = ++generation;
    clearTimeout(timer);
    if (!apiKey()) {
      showStatus('Enter an API key to see the queue.', 'idle');
      return;
    }
    try {
      var results = await Promise.all([
        api('GET', '/api/stats'),
        api('GET', '/api/executions?limit=10'),
        api('GET', '/api/operations?status=FAILED&limit=20'),
        api('GET', '/api/jobs/executions?limit=20'),
      ]);
      if (mine !== generation) return;
      renderStats(results[0]);
      renderThroughput(results[0].throughput);
      renderChunks(results[1].items);
      renderFailed(results[2].items, results[0].byStatus.FAILED);
      renderJobs(results[3].items);
      showStatus('Updated ' + clock(new Date().toISOString()) + ' · every ' + REFRESH_MS / 1000 + ' s', 'ok');
    } catch (error) {
      if (mine !== generation) return;
      showStatus(error.code === 'UNAUTHENTICATED' ? 'API key rejected: ' + error.message : 'Refresh failed: ' + error.message, 'error');
    }
    timer = setTimeout(refresh, REFRESH_MS);
  }

  byId('key-form').addEventListener('submit', function (event) {
    event.preventDefault();
    var key = byId('api-key').value.trim();
    if (key) localStorage.setItem(KEY_STORAGE, key);
    byId('api-key').value = '';
    notify('', '');
    refresh();
  });
  byId('forget').addEventListener('click', function () {
    localStorage.removeItem(KEY_STORAGE);
    notify('The key is forgotten in this browser.', '');
    refresh();
  });
  refresh();
})();
`;

const BODY = `
<header>
  <h1>Batch Service</h1>
  <span id="status" class="status" data-testid="status" role="status"></span>
  <form id="key-form" data-testid="key-form">
    <input id="api-key" data-testid="api-key-input" type="password" placeholder="API key (sent as x-api-key)" autocomplete="off" aria-label="API key">
    <button type="submit" class="primary" data-testid="api-key-save">Connect</button>
    <button type="button" id="forget" data-testid="api-key-forget">Forget key</button>
  </form>
</header>
<main>
  <p id="notice" class="notice" data-testid="notice" role="status"></p>
  <section class="cards" aria-label="Operations by status">
    <div class="card PENDING"><div class="label">Pending</div><div class="value" id="count-PENDING" data-testid="count-PENDING">–</div></div>
    <div class="card COMPLETED"><div class="label">Completed</div><div class="value" id="count-COMPLETED" data-testid="count-COMPLETED">–</div></div>
    <div class="card FAILED"><div class="label">Failed</div><div class="value" id="count-FAILED" data-testid="count-FAILED">–</div></div>
    <div class="card CANCELLED"><div class="label">Cancelled</div><div class="value" id="count-CANCELLED" data-testid="count-CANCELLED">–</div></div>
    <div class="card"><div class="label">Oldest due pending</div><div class="value" id="oldest-pending-age" data-testid="oldest-pending-age">–</div></div>
    <div class="card"><div class="label">Outbox backlog</div><div class="value" id="outbox-backlog" data-testid="outbox-backlog">–</div></div>
  </section>
  <div class="row">
    <section class="panel">
      <h2>Throughput <small>settled per minute, last 15 minutes: <span id="throughput-total" data-testid="throughput-total"></span></small></h2>
      <svg id="throughput" data-testid="throughput-chart" viewBox="0 0 720 210" role="img" aria-label="Operations settled per minute"></svg>
      <div class="legend"><span class="completed">completed</span><span class="failed">failed</span></div>
    </section>
    <section class="panel">
      <h2>Queue by target</h2>
      <table data-testid="targets-table">
        <thead><tr><th>Target</th><th class="n">Pending</th><th class="n">Completed</th><th class="n">Failed</th><th class="n">Cancelled</th></tr></thead>
        <tbody id="targets"></tbody>
      </table>
    </section>
  </div>
  <section class="panel">
    <h2>Recent chunks <small>one transaction each, with its counters</small></h2>
    <table data-testid="chunks-table">
      <thead><tr><th>#</th><th>Status</th><th>Started</th><th class="n">Took</th><th class="n">Read</th><th class="n">Written</th><th class="n">Filtered</th><th class="n">Skipped</th><th class="n">Commits</th><th class="n">Rollbacks</th><th>Exit message</th></tr></thead>
      <tbody id="chunks"></tbody>
    </table>
  </section>
  <section class="panel">
    <h2>Jobs running <small>with their progress; stopped at the next chunk</small></h2>
    <table data-testid="jobs-running-table">
      <thead><tr><th>#</th><th>Job</th><th>Status</th><th>Progress</th><th>Started</th><th class="n">Written</th><th></th></tr></thead>
      <tbody id="jobs-running"></tbody>
    </table>
    <h2>Job history <small>the newest executions that ended</small></h2>
    <table data-testid="jobs-history-table">
      <thead><tr><th>#</th><th>Job</th><th>Status</th><th>Exit</th><th>Started</th><th>Ended</th><th class="n">Written</th><th class="n">Starts</th><th>Description</th><th></th></tr></thead>
      <tbody id="jobs-history"></tbody>
    </table>
  </section>
  <section class="panel">
    <h2>Failed operations <small id="failed-note" data-testid="failed-note"></small></h2>
    <table data-testid="failed-table">
      <thead><tr><th>#</th><th>Target</th><th>Type</th><th>Label</th><th>Error</th><th>Message</th><th>Failed at</th><th></th></tr></thead>
      <tbody id="failed"></tbody>
    </table>
  </section>
</main>
<footer>Reads <code>/api/stats</code>, <code>/api/executions</code>, <code>/api/operations</code> and <code>/api/jobs/executions</code> with your key · <a href="/api/docs">API docs</a></footer>
`;

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Batch Service</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>${BODY}<script>${SCRIPT}</script>
</body>
</html>
`;

function sha256(text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
}

/** Only this page's own script and style run; it talks only to its own origin. */
export const DASHBOARD_CONTENT_SECURITY_POLICY = [
  `default-src 'none'`,
  `script-src ${sha256(SCRIPT)}`,
  `style-src ${sha256(STYLE)}`,
  `connect-src 'self'`,
  `img-src data:`,
  `base-uri 'none'`,
  `form-action 'none'`,
  `frame-ancestors 'none'`,
].join('; ');

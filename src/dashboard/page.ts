import { createHash } from 'node:crypto';

/**
 * The operator's dashboard (`GET /`): one static page, plain JavaScript and CSS, no build step and nothing loaded
 * from elsewhere. It asks for an API key (kept in localStorage, sent as `x-api-key`) and polls the REST API:
 * `/api/stats`, `/api/executions`, `/api/operations?status=FAILED`, `/api/jobs/executions`, `/api/jobs/schedules`, and
 * the execution the address names (`#job-execution-<id>`) with a page of its rejects. It launches copies and uploads
 * imports with the same key. Everything it shows is written with `textContent` or `setAttribute`, never as HTML,
 * because operation errors and rejected records carry database messages and the callers' data.
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
.badge.COMPLETED, .badge.enabled { color: var(--completed); background: var(--completed-bg); }
.badge.FAILED { color: var(--failed); background: var(--failed-bg); }
.badge.CANCELLED, .badge.ABANDONED, .badge.disabled { color: var(--cancelled); background: var(--cancelled-bg); }
.badge.STARTING, .badge.STARTED, .badge.STOPPING { color: var(--accent); background: #eff4ff; }
.badge.STOPPED { color: var(--pending); background: var(--pending-bg); }
.progress { display: inline-block; width: 160px; height: 8px; margin-right: 8px; border-radius: 4px; background: var(--line); vertical-align: middle; overflow: hidden; }
.progress > span { display: block; height: 100%; background: var(--accent); }
.progress.unknown > span { width: 30%; opacity: .5; }
td.actions, td.nowrap { white-space: nowrap; }
td.actions button { padding: 2px 10px; font-size: 12px; margin-left: 8px; }
a { color: var(--accent); }
.params { display: flex; flex-wrap: wrap; gap: 2px 10px; max-width: 420px; color: var(--muted); font-size: 12px; }
.params code { color: var(--ink); overflow-wrap: anywhere; }
dl.facts { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 4px 16px; margin: 0 0 14px; }
dl.facts dt { color: var(--muted); font-size: 12px; }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.pager { display: flex; align-items: center; gap: 10px; margin-top: 8px; color: var(--muted); font-size: 12px; }
form.job-form { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 8px 12px; align-items: center; }
form.job-form input, form.job-form select { width: 100%; padding: 5px 8px; border: 1px solid #d0d5dd; border-radius: 6px; font: inherit; }
form.job-form input[type=checkbox] { width: auto; justify-self: start; }
form.job-form label { color: var(--muted); font-size: 12px; }
form.job-form button { grid-column: 2; justify-self: start; }
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
  function withTestId(node, id) { node.setAttribute('data-testid', id); return node; }
  function badge(status) { return el('span', { class: 'badge ' + status }, [status]); }
  function clock(iso) { return iso ? new Date(iso).toLocaleTimeString('en-GB', { hour12: false }) : ''; }
  function age(seconds) {
    var s = Math.round(seconds);
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
    return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  }

  function apiKey() { return localStorage.getItem(KEY_STORAGE) || ''; }

  /** A call with the key; its body an object sent as JSON, or a Blob (a file) sent as it is, with its headers. */
  async function api(method, path, body, headers) {
    var init = { method: method, headers: Object.assign({ 'x-api-key': apiKey(), accept: 'application/json' }, headers || {}) };
    if (body instanceof Blob) init.body = body;
    else if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers['content-type'] = 'application/json';
    }
    var response = await fetch(path, init);
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

  // Jobs: the executions running and ended, each with its parameters, the link to its steps and rejects, Stop and Restart.
  var RUNNING = ['STARTING', 'STARTED', 'STOPPING'];

  function written(execution) {
    return execution.steps.reduce(function (sum, step) { return sum + step.writeCount; }, 0);
  }

  function skipped(steps) {
    return steps.reduce(function (sum, s) { return sum + s.readSkipCount + s.processSkipCount + s.writeSkipCount; }, 0);
  }

  /** What tells runs apart first (source, target, the file and its format, the mode), then the other parameters. */
  var FIRST_PARAMETERS = ['source', 'target', 'sha256', 'format', 'mode'];

  function parameterText(value) {
    if (Array.isArray(value)) return value.join(',');
    return value !== null && typeof value === 'object' ? JSON.stringify(value) : String(value);
  }

  /** Each parameter as name and value; a data set's sha256 shortened to its first 12 digits (whole in the title). */
  function parameterList(parameters) {
    var names = Object.keys(parameters || {}).sort(function (a, b) {
      var x = FIRST_PARAMETERS.indexOf(a), y = FIRST_PARAMETERS.indexOf(b);
      return (x < 0 ? 99 : x) - (y < 0 ? 99 : y) || (a < b ? -1 : a > b ? 1 : 0);
    });
    return el('span', { class: 'params' }, names.map(function (name) {
      var text = parameterText(parameters[name]);
      var shown = name === 'sha256' ? el('code', { title: text }, [text.slice(0, 12) + '…']) : el('code', {}, [text]);
      return el('span', { 'data-testid': 'job-parameter', 'data-name': name, 'data-value': text }, [(name === 'sha256' ? 'file' : name) + ' ', shown]);
    }));
  }

  function detailsLink(execution) {
    return el('a', { href: '#job-execution-' + execution.id, 'data-testid': 'job-details-link', 'data-id': execution.id }, ['steps · rejects']);
  }

  /** A bar of done / total, with the rate and the time left; a bar without an end when the total is unknown. */
  function progressCell(progress) {
    // nothing yet until its step reports (before it, an execution's progress is 0 items of no total)
    if (!progress || (!progress.done && progress.total === null)) return el('td', { 'data-testid': 'job-progress' }, ['']);
    var share = progress.total ? Math.min(1, progress.done / progress.total) : null;
    var fillNode = el('span', {}, []);
    if (share !== null) fillNode.style.width = (share * 100).toFixed(1) + '%'; // CSSOM: the policy allows no style attribute
    var bar = el('span', { class: share === null ? 'progress unknown' : 'progress' }, [fillNode]);
    var text = (share === null ? count(progress.done) + ' ' + progress.unit : (share * 100).toFixed(0) + ' %') +
      (progress.perSecond ? ' · ' + count(Math.round(progress.perSecond)) + ' ' + progress.unit + '/s' : '') +
      (progress.etaSeconds !== null && progress.etaSeconds !== undefined ? ' · ' + age(progress.etaSeconds) + ' left' : '');
    return el('td', { 'data-testid': 'job-progress', 'data-done': String(progress.done), 'data-total': String(progress.total) }, [bar, text]);
  }

  /** The link to its steps and rejects; Stop while it runs, Restart only where a restart would start (restartable). */
  function jobAction(execution) {
    var action = RUNNING.indexOf(execution.status) >= 0 && execution.status !== 'STOPPING' ? 'stop'
      : execution.restartable ? 'restart' : null;
    if (!action) return el('td', { class: 'actions' }, [detailsLink(execution)]);
    var button = el('button', { type: 'button', 'data-testid': 'job-' + action, 'data-id': execution.id }, [action === 'stop' ? 'Stop' : 'Restart']);
    button.addEventListener('click', function () { controlJob(execution.id, action, button); });
    return el('td', { class: 'actions' }, [detailsLink(execution), button]);
  }

  function renderJobs(items) {
    var running = items.filter(function (e) { return RUNNING.indexOf(e.status) >= 0; });
    var ended = items.filter(function (e) { return RUNNING.indexOf(e.status) < 0; });
    fill(byId('jobs-running'), running.map(function (e) {
      return el('tr', { 'data-testid': 'job-running-row', 'data-id': e.id, 'data-status': e.status }, [
        el('td', {}, [e.id]),
        el('td', {}, [el('code', {}, [e.job])]),
        el('td', { 'data-testid': 'job-parameters' }, [parameterList(e.parameters)]),
        el('td', {}, [badge(e.status)]),
        progressCell(e.progress),
        el('td', {}, [clock(e.startedAt)]),
        numberCell(written(e)),
        jobAction(e),
      ]);
    }), 8, 'No job running');
    fill(byId('jobs-history'), ended.map(function (e) {
      return el('tr', { 'data-testid': 'job-history-row', 'data-id': e.id, 'data-status': e.status }, [
        el('td', {}, [e.id]),
        el('td', {}, [el('code', {}, [e.job])]),
        el('td', { 'data-testid': 'job-parameters' }, [parameterList(e.parameters)]),
        el('td', {}, [badge(e.status)]),
        el('td', { 'data-testid': 'job-exit' }, [e.exitStatus ? e.exitStatus.code : '']),
        el('td', {}, [clock(e.startedAt)]),
        el('td', {}, [clock(e.endedAt)]),
        withTestId(numberCell(written(e)), 'job-written'),
        withTestId(numberCell(skipped(e.steps)), 'job-skipped'),
        el('td', { class: 'n', 'data-testid': 'job-starts' }, [count(e.startCount)]),
        el('td', { class: 'message' }, [e.exitStatus && e.exitStatus.description ? e.exitStatus.description : '']),
        jobAction(e),
      ]);
    }), 12, 'No job has ended yet');
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

  // The execution whose steps and rejects are shown, as the address names it (#job-execution-<id>), and the page of
  // its rejects: the cursor of each page seen, so that Previous goes back.
  var REJECTS_PAGE = 20;
  var detail = { id: null, cursors: [null], page: 0, next: null };
  var detailLoads = 0;

  function openFromAddress() {
    var match = /^#job-execution-(\d{1,18})$/.exec(location.hash);
    var id = match ? match[1] : null;
    if (id === detail.id) return;
    detail = { id: id, cursors: [null], page: 0, next: null };
    byId('job-detail').hidden = id === null;
    if (id === null) return;
    ['job-detail-facts', 'job-steps', 'job-rejects'].forEach(function (part) { byId(part).replaceChildren(); });
    byId('job-detail-title').textContent = 'Job execution ' + id;
    byId('job-detail').scrollIntoView();
    refreshDetail();
  }

  async function refreshDetail() {
    var id = detail.id;
    var mine = ++detailLoads;
    if (id === null || !apiKey()) return;
    var path = '/api/jobs/executions/' + encodeURIComponent(id);
    var cursor = detail.cursors[detail.page];
    try {
      var results = await Promise.all([
        api('GET', path),
        api('GET', path + '/rejects?limit=' + REJECTS_PAGE + (cursor ? '&cursor=' + encodeURIComponent(cursor) : '')),
      ]);
      if (mine === detailLoads) renderDetail(results[0], results[1]);
    } catch (error) {
      if (mine === detailLoads) byId('job-detail-title').textContent = 'Job execution ' + id + ': ' + error.message;
    }
  }

  function fact(term, value) {
    return [el('dt', {}, [term]), el('dd', { 'data-testid': 'fact-' + term.toLowerCase() }, [value])];
  }

  function renderDetail(e, rejects) {
    byId('job-detail-title').textContent = 'Job execution ' + e.id + ' · ' + e.job;
    var facts = [].concat(
      fact('Status', el('span', {}, [badge(e.status), ' ', e.exitStatus ? e.exitStatus.code : ''])),
      fact('Client', e.client),
      fact('Parameters', parameterList(e.parameters)),
      fact('Options', parameterList(e.options)),
      fact('Started', e.startedAt ? inZone(e.startedAt) : '–'),
      fact('Ended', e.endedAt ? inZone(e.endedAt) : '–'),
      fact('Starts', count(e.startCount) + ' (of instance ' + e.instanceId + ')'),
      fact('Description', e.exitStatus && e.exitStatus.description ? e.exitStatus.description : '–'));
    byId('job-detail-facts').replaceChildren.apply(byId('job-detail-facts'), facts);
    fill(byId('job-steps'), e.steps.map(function (step) {
      return el('tr', { 'data-testid': 'step-row', 'data-name': step.name }, [
        el('td', {}, [el('code', {}, [step.name])]),
        el('td', {}, [badge(step.status)]),
        el('td', {}, [step.exitStatus ? step.exitStatus.code : '']),
        withTestId(numberCell(step.readCount), 'step-read'),
        withTestId(numberCell(step.writeCount), 'step-written'),
        numberCell(step.filterCount),
        withTestId(numberCell(skipped([step])), 'step-skipped'),
        numberCell(step.commitCount),
        numberCell(step.rollbackCount),
        withTestId(numberCell(step.retryCount), 'step-retries'),
        el('td', {}, [clock(step.startedAt)]),
        el('td', {}, [clock(step.endedAt)]),
        el('td', { class: 'message' }, [step.exitStatus && step.exitStatus.description ? step.exitStatus.description : '']),
      ]);
    }), 13, 'No step has started');
    fill(byId('job-rejects'), rejects.items.map(function (r) {
      return el('tr', { 'data-testid': 'reject-row', 'data-line': r.line === null ? '' : String(r.line) }, [
        el('td', { class: 'n', 'data-testid': 'reject-line' }, [r.line === null ? '' : count(r.line)]),
        el('td', { 'data-testid': 'reject-column' }, [r.column || '']),
        el('td', { 'data-testid': 'reject-code' }, [el('code', {}, [r.code])]),
        el('td', { class: 'message', 'data-testid': 'reject-message' }, [r.message]),
        el('td', { class: 'message', 'data-testid': 'reject-record' }, [r.record === null ? '' : r.record]),
      ]);
    }), 5, detail.page === 0 ? 'No record was rejected' : 'No more rejects');
    detail.next = rejects.nextCursor;
    var first = detail.page * REJECTS_PAGE + 1;
    byId('rejects-page').textContent = rejects.items.length
      ? 'page ' + (detail.page + 1) + ': rejects ' + count(first) + '–' + count(first + rejects.items.length - 1)
      : 'page ' + (detail.page + 1);
    byId('rejects-previous').disabled = detail.page === 0;
    byId('rejects-next').disabled = !detail.next;
  }

  function turnRejectsPage(step) {
    if (step > 0 && !detail.next) return;
    if (step > 0) detail.cursors[detail.page + 1] = detail.next;
    detail.page = Math.max(0, detail.page + step);
    refreshDetail();
  }

  // Schedules (an admin's), each tick in the schedule's own time zone, as its cron reads it.

  /** A time to the second, in the time zone given (a schedule's, as its cron reads it) or else the browser's. */
  function inZone(iso, timeZone) {
    var parts = {};
    new Intl.DateTimeFormat('en-GB', {
      timeZone: timeZone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit',
      second: '2-digit', hourCycle: 'h23',
    }).formatToParts(new Date(iso)).forEach(function (part) { parts[part.type] = part.value; });
    return parts.year + '-' + parts.month + '-' + parts.day + ' ' + parts.hour + ':' + parts.minute + ':' + parts.second;
  }

  function tickCell(iso, timeZone, testId) {
    return el('td', { class: 'nowrap', 'data-testid': testId, 'data-at': iso || '', title: iso || '' }, [iso ? inZone(iso, timeZone) : '–']);
  }

  /** Schedules are an admin's: for another key (null) the table says so. */
  function renderSchedules(schedules) {
    fill(byId('schedules'), (schedules || []).map(function (s) {
      return el('tr', { 'data-testid': 'schedule-row', 'data-name': s.name, 'data-enabled': String(s.enabled) }, [
        el('td', { class: 'nowrap' }, [el('code', {}, [s.name])]),
        el('td', {}, [el('code', {}, [s.job])]),
        el('td', {}, [s.client]),
        el('td', { class: 'nowrap', 'data-testid': 'schedule-cron' }, [el('code', {}, [s.cron])]),
        el('td', { 'data-testid': 'schedule-time-zone' }, [s.timeZone]),
        el('td', {}, [parameterList(s.parameters)]),
        tickCell(s.lastTickAt, s.timeZone, 'schedule-last-tick'),
        tickCell(s.nextTickAt, s.timeZone, 'schedule-next-tick'),
        el('td', { 'data-testid': 'schedule-enabled' }, [el('span', { class: 'badge ' + (s.enabled ? 'enabled' : 'disabled') }, [s.enabled ? 'enabled' : 'disabled'])]),
      ]);
    }), 9, schedules ? 'No schedule' : 'Schedules are listed for an admin key');
  }

  // Launching from the page: a copy, and an upload of a data set that the service then imports. The forms are sent by
  // script with the key (the policy allows no form to be submitted), and the answer is shown as the notice.

  async function launchCopy(event) {
    event.preventDefault();
    var parameters = { source: byId('copy-source').value.trim(), target: byId('copy-target').value.trim(), mode: byId('copy-mode').value };
    var runId = byId('copy-run-id').value.trim();
    if (runId) parameters.runId = runId;
    byId('copy-launch').disabled = true;
    try {
      var execution = await api('POST', '/api/jobs/copy/executions', { parameters: parameters });
      notify('The copy was launched: job execution ' + execution.id + ' is ' + execution.status + '.', '');
      await refresh();
    } catch (error) {
      notify('The copy was not launched: ' + error.message, 'error');
    } finally {
      byId('copy-launch').disabled = false;
    }
  }

  /** The query of an upload, from the form: only what differs from the service's defaults. */
  function importQuery(file) {
    var format = byId('import-format').value || (/\.(ndjson|jsonl)(\.gz)?$/i.test(file.name) ? 'ndjson' : 'csv');
    var query = new URLSearchParams({ target: byId('import-target').value.trim(), mode: byId('import-mode').value });
    if (byId('import-format').value) query.set('format', format);
    var delimiter = byId('import-delimiter').value;
    if (delimiter === '\\t' || /^tab$/i.test(delimiter)) delimiter = '\t';
    if (format === 'csv' && !byId('import-header').checked) query.set('header', 'false');
    if (format === 'csv' && delimiter && delimiter !== ',') query.set('delimiter', delimiter);
    [['columns', 'import-columns'], ['skipLimit', 'import-skip-limit'], ['runId', 'import-run-id']].forEach(function (field) {
      var value = byId(field[1]).value.trim();
      if (value) query.set(field[0], value);
    });
    return { query: query, contentType: format === 'ndjson' ? 'application/x-ndjson' : 'text/csv' };
  }

  async function uploadImport(event) {
    event.preventDefault();
    var file = byId('import-file').files[0];
    if (!file) return notify('Choose a file to upload.', 'error');
    var upload = importQuery(file);
    var headers = { 'content-type': upload.contentType };
    if (/\.gz$/i.test(file.name)) headers['content-encoding'] = 'gzip';
    byId('import-upload').disabled = true;
    notify('Uploading ' + file.name + ' (' + count(file.size) + ' bytes)…', '');
    try {
      var execution = await api('POST', '/api/imports?' + upload.query.toString(), file, headers);
      notify('The import of ' + file.name + ' was launched: job execution ' + execution.id + ' is ' + execution.status + '.', '');
      await refresh();
    } catch (error) {
      notify('The import of ' + file.name + ' was refused: ' + error.message, 'error');
    } finally {
      byId('import-upload').disabled = false;
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
        api('GET', '/api/jobs/schedules').catch(function (error) {
          if (error.code === 'FORBIDDEN') return null;
          throw error;
        }),
      ]);
      if (mine !== generation) return;
      renderStats(results[0]);
      renderThroughput(results[0].throughput);
      renderChunks(results[1].items);
      renderFailed(results[2].items, results[0].byStatus.FAILED);
      renderJobs(results[3].items);
      renderSchedules(results[4]);
      await refreshDetail();
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
  byId('copy-form').addEventListener('submit', launchCopy);
  byId('import-form').addEventListener('submit', uploadImport);
  byId('rejects-next').addEventListener('click', function () { turnRejectsPage(1); });
  byId('rejects-previous').addEventListener('click', function () { turnRejectsPage(-1); });
  window.addEventListener('hashchange', openFromAddress);
  openFromAddress();
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
  <section class="panel" id="jobs">
    <h2>Jobs running <small>with their progress; stopped at the next chunk</small></h2>
    <table data-testid="jobs-running-table">
      <thead><tr><th>#</th><th>Job</th><th>Parameters</th><th>Status</th><th>Progress</th><th>Started</th><th class="n">Written</th><th></th></tr></thead>
      <tbody id="jobs-running"></tbody>
    </table>
    <h2>Job history <small>the newest executions that ended</small></h2>
    <table data-testid="jobs-history-table">
      <thead><tr><th>#</th><th>Job</th><th>Parameters</th><th>Status</th><th>Exit</th><th>Started</th><th>Ended</th><th class="n">Written</th><th class="n">Rejected</th><th class="n">Starts</th><th>Description</th><th></th></tr></thead>
      <tbody id="jobs-history"></tbody>
    </table>
  </section>
  <section class="panel" id="job-detail" data-testid="job-detail" hidden>
    <h2><span id="job-detail-title" data-testid="job-detail-title"></span> <small><a href="#jobs" data-testid="job-detail-close">close</a></small></h2>
    <dl class="facts" id="job-detail-facts"></dl>
    <table data-testid="job-steps-table">
      <thead><tr><th>Step</th><th>Status</th><th>Exit</th><th class="n">Read</th><th class="n">Written</th><th class="n">Filtered</th><th class="n">Skipped</th><th class="n">Commits</th><th class="n">Rollbacks</th><th class="n">Retries</th><th>Started</th><th>Ended</th><th>Description</th></tr></thead>
      <tbody id="job-steps"></tbody>
    </table>
    <h2>Rejects <small>the records its steps skipped, in the order of the data</small></h2>
    <table data-testid="job-rejects-table">
      <thead><tr><th class="n">Line</th><th>Column</th><th>Code</th><th>Message</th><th>Record</th></tr></thead>
      <tbody id="job-rejects"></tbody>
    </table>
    <div class="pager">
      <button type="button" id="rejects-previous" data-testid="rejects-previous">Previous</button>
      <span id="rejects-page" data-testid="rejects-page"></span>
      <button type="button" id="rejects-next" data-testid="rejects-next">Next</button>
    </div>
  </section>
  <div class="row">
    <section class="panel">
      <h2>Launch a copy <small>a table or view into a table, inside PostgreSQL</small></h2>
      <form id="copy-form" class="job-form" data-testid="copy-form">
        <label for="copy-source">Source</label><input id="copy-source" data-testid="copy-source" required placeholder="schema.table" autocomplete="off">
        <label for="copy-target">Target</label><input id="copy-target" data-testid="copy-target" required placeholder="schema.table" autocomplete="off">
        <label for="copy-mode">Mode</label><select id="copy-mode" data-testid="copy-mode"><option>insert</option><option>upsert</option></select>
        <label for="copy-run-id">Run id</label><input id="copy-run-id" data-testid="copy-run-id" placeholder="optional: the same copy again" autocomplete="off">
        <button type="submit" class="primary" id="copy-launch" data-testid="copy-launch">Launch copy</button>
      </form>
    </section>
    <section class="panel">
      <h2>Upload an import <small>CSV or NDJSON, gzip too; launched once stored</small></h2>
      <form id="import-form" class="job-form" data-testid="import-form">
        <label for="import-file">File</label><input id="import-file" data-testid="import-file" type="file" required>
        <label for="import-target">Target</label><input id="import-target" data-testid="import-target" required placeholder="schema.table" autocomplete="off">
        <label for="import-mode">Mode</label><select id="import-mode" data-testid="import-mode"><option>insert</option><option>upsert</option></select>
        <label for="import-format">Format</label><select id="import-format" data-testid="import-format"><option value="">by the file's name</option><option>csv</option><option>ndjson</option></select>
        <label for="import-header">CSV header</label><input id="import-header" data-testid="import-header" type="checkbox" checked>
        <label for="import-delimiter">CSV delimiter</label><input id="import-delimiter" data-testid="import-delimiter" value="," maxlength="3" autocomplete="off">
        <label for="import-columns">CSV columns</label><input id="import-columns" data-testid="import-columns" placeholder="without a header: the columns in order, comma-separated" autocomplete="off">
        <label for="import-skip-limit">Skip limit</label><input id="import-skip-limit" data-testid="import-skip-limit" type="number" min="0" placeholder="0: the first reject fails it">
        <label for="import-run-id">Run id</label><input id="import-run-id" data-testid="import-run-id" placeholder="optional: the same data again" autocomplete="off">
        <button type="submit" class="primary" id="import-upload" data-testid="import-upload">Upload</button>
      </form>
    </section>
  </div>
  <section class="panel">
    <h2>Schedules <small>each tick launches its job as its client; ticks in the schedule's time zone</small></h2>
    <table data-testid="schedules-table">
      <thead><tr><th>Name</th><th>Job</th><th>Client</th><th>Cron</th><th>Time zone</th><th>Parameters</th><th>Last tick</th><th>Next tick</th><th></th></tr></thead>
      <tbody id="schedules"></tbody>
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
<footer>Reads <code>/api/stats</code>, <code>/api/executions</code>, <code>/api/operations</code>, <code>/api/jobs/executions</code> and <code>/api/jobs/schedules</code> with your key; launches with <code>/api/jobs/copy/executions</code> and <code>/api/imports</code> · <a href="/api/docs">API docs</a></footer>
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

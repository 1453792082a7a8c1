// ByteBasket live dashboard: reads /api/v1/ (docs/api.md) and refetches what a section shows
// whenever the server-sent event stream /api/v1/events reports new data.
'use strict';

const WINDOWS = 30; // minutes shown on the overview
const MINUTE = 60 * 1000;
const TRENDS_EVERY = 60 * 1000; // trends change when the 5-minute batch job runs
const USER_EVERY = 2000;
const FRAUD_EVERY = 2000; // alerts commit every 100 ms; the page need not follow every one

const $ = (id) => document.getElementById(id);

const state = {
  section: 'overview',
  platform: 'all',
  user: '', // the user id shown by the lookup
  userLoading: '',
  seenTx: new Set(),
  trendsAt: 0,
  userAt: 0,
  fraudAt: 0,
};

// ---------- formatting ----------

const intFmt = new Intl.NumberFormat('en-US');
// Product revenue sums every currency's minor units as-is (docs/api.md), so it is shown in
// hundredths without a currency sign.
const decFmt = new Intl.NumberFormat('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const pctFmt = new Intl.NumberFormat('en-US', { style: 'percent', minimumFractionDigits: 1, maximumFractionDigits: 1 });
const moneyFmts = new Map();

function moneyFmt(cur) {
  let f = moneyFmts.get(cur);
  if (!f) {
    try {
      f = new Intl.NumberFormat('en-US', { style: 'currency', currency: cur });
    } catch (e) {
      // An unknown code still shows its amount, in minor units.
      f = { format: (v) => `${intFmt.format(v)} ${cur}`, resolvedOptions: () => ({ maximumFractionDigits: 0 }) };
    }
    moneyFmts.set(cur, f);
  }
  return f;
}

// Minor units to the currency's major units (cents to dollars, yen stay yen).
function major(minor, cur) {
  return minor / 10 ** moneyFmt(cur).resolvedOptions().maximumFractionDigits;
}

function fmtMoney(minor, cur) {
  return moneyFmt(cur).format(major(minor, cur));
}

function fmtTime(iso, withSeconds) {
  if (!iso) return '–';
  const d = new Date(iso);
  return d.toLocaleTimeString('en-GB', withSeconds ? undefined : { hour: '2-digit', minute: '2-digit' });
}

function fmtDateTime(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return d.toLocaleString('en-GB', { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

// setNum shows an integer and keeps the raw value in data-value, which tests read.
function setNum(id, v) {
  const el = $(id);
  if (v === undefined || v === null) {
    el.textContent = '–';
    el.dataset.value = '';
    return;
  }
  el.textContent = intFmt.format(v);
  el.dataset.value = String(v);
}

function setRate(id, v) {
  const el = $(id);
  el.textContent = v === undefined || v === null ? '–' : pctFmt.format(v);
  el.dataset.value = v === undefined || v === null ? '' : String(v);
}

// setMoney shows one line per currency, each with data-currency and data-value in minor units.
function setMoney(id, byCur) {
  const el = $(id);
  el.replaceChildren();
  const curs = Object.keys(byCur || {}).sort();
  el.dataset.value = JSON.stringify(byCur || {});
  if (curs.length === 0) {
    el.textContent = '–';
    return;
  }
  for (const cur of curs) {
    const s = document.createElement('span');
    s.className = 'money';
    s.dataset.currency = cur;
    s.dataset.value = String(byCur[cur]);
    s.textContent = fmtMoney(byCur[cur], cur);
    el.append(s);
  }
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-')) e.dataset[k.slice(5).replace(/-([a-z])/g, (_, c) => c.toUpperCase())] = v;
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : String(c ?? ''));
  return e;
}

function addMoney(into, byCur) {
  for (const [cur, v] of Object.entries(byCur || {})) into[cur] = (into[cur] || 0) + v;
  return into;
}

// ---------- API ----------

class APIError extends Error {}

async function api(path) {
  let resp;
  try {
    resp = await fetch(path, { headers: { Accept: 'application/json' }, cache: 'no-store' });
  } catch (e) {
    throw new APIError(`cannot reach the server (${e.message})`);
  }
  let body = null;
  try {
    body = await resp.json();
  } catch (e) {
    // A non-JSON answer (an old binary without the API, a proxy page) is reported below.
  }
  if (!resp.ok) {
    const msg = body && body.error ? body.error : `HTTP ${resp.status}`;
    throw new APIError(`${path.split('?')[0]}: ${msg}`);
  }
  if (body === null) throw new APIError(`${path.split('?')[0]}: the answer is not JSON`);
  return body;
}

function showError(err) {
  const box = $('error');
  if (!err) {
    box.hidden = true;
    box.textContent = '';
    return;
  }
  box.hidden = false;
  box.textContent = err.message || String(err);
}

// ---------- charts ----------

const PALETTE = ['#2563eb', '#16a34a', '#d97706', '#9333ea', '#dc2626', '#0891b2', '#4b5563'];
const charts = {};

function lineOptions(yTitle) {
  return {
    animation: false,
    responsive: true,
    maintainAspectRatio: false,
    interaction: { mode: 'index', intersect: false },
    plugins: { legend: { display: true, position: 'bottom', labels: { boxWidth: 12 } } },
    scales: { y: { beginAtZero: true, title: { display: !!yTitle, text: yTitle } }, x: { ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 10 } } },
  };
}

function makeCharts() {
  if (typeof Chart === 'undefined') throw new Error('the chart library did not load: run `make web` and rebuild');
  charts.revenue = new Chart($('chart-revenue'), { type: 'line', data: { labels: [], datasets: [] }, options: lineOptions('major units') });
  charts.orders = new Chart($('chart-orders'), { type: 'bar', data: { labels: [], datasets: [{ label: 'orders', data: [], backgroundColor: PALETTE[0] }] }, options: lineOptions('') });
  charts.users = new Chart($('chart-active-users'), { type: 'line', data: { labels: [], datasets: [{ label: 'active users', data: [], borderColor: PALETTE[1], backgroundColor: PALETTE[1], fill: false, tension: 0.2, pointRadius: 2 }] }, options: lineOptions('') });
  const line = (label, i) => ({ label, data: [], borderColor: PALETTE[i], backgroundColor: PALETTE[i], fill: false, tension: 0.2, pointRadius: 2 });
  charts.monitoring = new Chart($('chart-fraud-monitoring'), {
    type: 'line',
    data: { labels: [], datasets: [line('orders', 0), line('failed payments', 3), line('refunds', 2), line('chargebacks', 4)] },
    options: lineOptions(''),
  });
  charts.fraudScores = new Chart($('chart-fraud-scores'), { type: 'bar', data: { labels: [], datasets: [{ label: 'decisions', data: [], backgroundColor: PALETTE[4] }] }, options: lineOptions('') });
  const trendOpts = lineOptions('');
  trendOpts.scales.y1 = { beginAtZero: true, position: 'right', grid: { drawOnChartArea: false }, title: { display: true, text: 'orders' } };
  trendOpts.scales.y.title = { display: true, text: 'active users' };
  charts.trends = new Chart($('chart-trends'), {
    type: 'line',
    data: { labels: [], datasets: [
      { label: 'active users', data: [], borderColor: PALETTE[1], backgroundColor: PALETTE[1], yAxisID: 'y', tension: 0.2 },
      { label: 'orders', data: [], borderColor: PALETTE[0], backgroundColor: PALETTE[0], yAxisID: 'y1', tension: 0.2 },
    ] },
    options: trendOpts,
  });
}

// ---------- overview ----------

// minuteSlots are the starts (ms) of the last WINDOWS minutes, so that minutes without data
// show as zero instead of vanishing from the axis.
function minuteSlots(newest) {
  const last = Math.max(newest, Math.floor(Date.now() / MINUTE) * MINUTE);
  const slots = [];
  for (let i = WINDOWS - 1; i >= 0; i--) slots.push(last - i * MINUTE);
  return slots;
}

function renderLive(live) {
  const windows = live.windows || [];
  const byStart = new Map(windows.map((w) => [Date.parse(w.start), w]));
  const now = Date.now();
  // Windows come newest first: the current one is still filling, the first one that has
  // ended is the latest complete minute.
  const current = windows.find((w) => Date.parse(w.end) > now);
  const complete = windows.find((w) => Date.parse(w.end) <= now);

  const cm = $('current-minute');
  cm.textContent = current ? `${fmtTime(current.start)}, filling` : '–';
  cm.dataset.start = current ? current.start : '';
  setNum('current-orders', current ? current.orders : 0);
  setNum('current-active-users', current ? current.active_users : 0);
  setNum('current-page-views', current ? current.page_views : 0);
  setNum('current-product-views', current ? current.product_views : 0);

  const lm = $('latest-minute');
  lm.textContent = complete ? `${fmtTime(complete.start)}–${fmtTime(complete.end)}` : '–';
  lm.dataset.start = complete ? complete.start : '';
  setNum('latest-orders', complete ? complete.orders : undefined);
  setNum('latest-active-users', complete ? complete.active_users : undefined);
  setNum('latest-page-views', complete ? complete.page_views : undefined);
  setMoney('latest-revenue', complete ? complete.revenue : {});

  let orders = 0;
  let failed = 0;
  let refunds = 0;
  let chargebacks = 0;
  const revenue = {};
  const ordersByCur = {};
  for (const w of windows) {
    orders += w.orders || 0;
    failed += w.payments_failed || 0;
    refunds += w.refunds || 0;
    chargebacks += w.chargebacks || 0;
    addMoney(revenue, w.revenue);
    addMoney(ordersByCur, w.orders_by_currency);
  }
  const aov = {};
  for (const cur of Object.keys(revenue)) if (ordersByCur[cur]) aov[cur] = Math.round(revenue[cur] / ordersByCur[cur]);
  setNum('total-orders', orders);
  setNum('total-payments-failed', failed);
  setMoney('total-revenue', revenue);
  setMoney('total-aov', aov);
  const tr = $('total-range');
  const oldest = windows[windows.length - 1];
  tr.dataset.from = oldest ? oldest.start : '';
  tr.dataset.to = windows[0] ? windows[0].end : '';
  tr.textContent = windows.length ? `${fmtTime(tr.dataset.from)}–${fmtTime(tr.dataset.to)}, ${windows.length} minutes with data` : 'no data yet';
  setNum('tx-orders', orders);
  setNum('tx-payments-failed', failed);
  setNum('tx-refunds', refunds);
  setNum('tx-chargebacks', chargebacks);

  const slots = minuteSlots(windows.length ? Date.parse(windows[0].start) : 0);
  const labels = slots.map((s) => fmtTime(new Date(s).toISOString()));
  const curs = Object.keys(revenue).sort();
  charts.revenue.data.labels = labels;
  charts.revenue.data.datasets = curs.map((cur, i) => ({
    label: cur,
    data: slots.map((s) => major(((byStart.get(s) || {}).revenue || {})[cur] || 0, cur)),
    borderColor: PALETTE[i % PALETTE.length],
    backgroundColor: PALETTE[i % PALETTE.length],
    tension: 0.2,
    pointRadius: 2,
  }));
  charts.revenue.update('none');
  charts.orders.data.labels = labels;
  charts.orders.data.datasets[0].data = slots.map((s) => (byStart.get(s) || {}).orders || 0);
  charts.orders.update('none');
  charts.users.data.labels = labels;
  charts.users.data.datasets[0].data = slots.map((s) => (byStart.get(s) || {}).active_users || 0);
  charts.users.update('none');
  // Transaction monitoring at a glance: the stream's counts per minute, all segments together
  // (the role's alerts name the segment that left its baseline).
  charts.monitoring.data.labels = labels;
  ['orders', 'payments_failed', 'refunds', 'chargebacks'].forEach((f, i) => {
    charts.monitoring.data.datasets[i].data = slots.map((s) => (byStart.get(s) || {})[f] || 0);
  });
  charts.monitoring.update('none');
}

function renderFunnel(f) {
  $('funnel-range').textContent = `${fmtTime(f.from)}–${fmtTime(f.to)}`;
  const top = Math.max(f.viewers || 0, 1);
  for (const stage of ['viewers', 'carters', 'checkout', 'buyers']) {
    setNum(`funnel-${stage}`, f[stage] || 0);
    $(`funnel-bar-${stage}`).style.width = `${(100 * (f[stage] || 0)) / top}%`;
  }
  setRate('funnel-view-to-cart', f.view_to_cart);
  setRate('funnel-cart-to-checkout', f.cart_to_checkout);
  setRate('funnel-checkout-to-order', f.checkout_to_order);
  setRate('funnel-view-to-order', f.view_to_order);
}

async function refreshOverview() {
  const p = encodeURIComponent(state.platform);
  const [live, funnel] = await Promise.all([
    api(`/api/v1/live?granularity=1m&windows=${WINDOWS}&platform=${p}`),
    api(`/api/v1/funnel?granularity=1h&platform=${p}`),
  ]);
  renderLive(live);
  renderFunnel(funnel);
}

// ---------- products ----------

function renderTop(tbodyID, items, money) {
  const rows = (items || []).map((it, i) =>
    el('tr', { 'data-id': it.id, 'data-value': String(it.value) },
      el('td', { class: 'num muted' }, i + 1),
      el('td', { class: 'id' }, it.id),
      el('td', { class: 'num' }, money ? decFmt.format(it.value / 100) : intFmt.format(it.value))));
  if (rows.length === 0) rows.push(el('tr', {}, el('td', { colSpan: 3, class: 'muted' }, 'no data in this window')));
  $(tbodyID).replaceChildren(...rows);
}

async function refreshTops() {
  const g = encodeURIComponent($('top-granularity').value);
  const n = encodeURIComponent($('top-n').value);
  const dims = [['product_views', 'top-product-views'], ['product_cart_adds', 'top-product-cart-adds'], ['product_revenue', 'top-product-revenue']];
  // The newest window of views sets the window the other two are read for, so the three
  // tables describe the same minutes.
  const views = await api(`/api/v1/top?dimension=product_views&granularity=${g}&n=${n}`);
  const start = views.start ? `&start=${encodeURIComponent(views.start)}` : '';
  const rest = await Promise.all(dims.slice(1).map(([d]) => api(`/api/v1/top?dimension=${d}&granularity=${g}&n=${n}${start}`)));
  const ts = $('top-start');
  ts.dataset.start = views.start || '';
  ts.textContent = views.start ? fmtDateTime(views.start) : '–';
  renderTop(dims[0][1], views.items, false);
  renderTop(dims[1][1], rest[0].items, false);
  renderTop(dims[2][1], rest[1].items, true);
}

function moneyText(byCur) {
  return Object.keys(byCur || {}).sort().map((c) => fmtMoney(byCur[c], c)).join(' · ') || '–';
}

async function refreshTrends() {
  const tr = await api(`/api/v1/trends?granularity=hour&platform=${encodeURIComponent(state.platform)}`);
  state.trendsAt = Date.now();
  const buckets = tr.buckets || [];
  $('trends-empty').hidden = buckets.length > 0;
  $('chart-trends').parentElement.hidden = buckets.length === 0;
  const asc = buckets.slice().reverse();
  charts.trends.data.labels = asc.map((b) => fmtDateTime(b.start).replace(/:\d\d$/, ''));
  charts.trends.data.datasets[0].data = asc.map((b) => b.active_users || 0);
  charts.trends.data.datasets[1].data = asc.map((b) => b.orders || 0);
  charts.trends.update('none');
  $('trends-table').replaceChildren(...buckets.map((b) =>
    el('tr', { 'data-start': b.start },
      el('td', {}, fmtDateTime(b.start).replace(/:\d\d$/, '')),
      el('td', { class: 'num' }, intFmt.format(b.active_users || 0)),
      el('td', { class: 'num' }, intFmt.format(b.buyers || 0)),
      el('td', { class: 'num' }, pctFmt.format(b.conversion || 0)),
      el('td', { class: 'num' }, intFmt.format(b.product_views || 0)),
      el('td', { class: 'num' }, intFmt.format(b.cart_adds || 0)),
      el('td', { class: 'num' }, intFmt.format(b.orders || 0)),
      el('td', {}, moneyText(b.revenue)))));
}

// ---------- transactions ----------

const KIND_LABEL = { order_placed: 'order', payment_authorized: 'payment', payment_failed: 'payment failed', refund: 'refund', chargeback: 'chargeback' };

function userLink(id) {
  const a = el('a', { href: `#user/${encodeURIComponent(id)}`, class: 'id' }, id);
  return a;
}

async function refreshTransactions() {
  const kind = encodeURIComponent($('tx-kind').value);
  const body = await api(`/api/v1/transactions?kind=${kind}&limit=50`);
  const txs = body.transactions || [];
  const first = state.seenTx.size === 0;
  const seen = new Set();
  const rows = txs.map((t) => {
    const key = `${t.time}|${t.kind}|${t.order_id}|${t.user_id}`;
    seen.add(key);
    const amount = t.currency ? fmtMoney(t.amount_minor || 0, t.currency) : '';
    return el('tr', { class: `tx ${t.kind}${!first && !state.seenTx.has(key) ? ' new' : ''}`, 'data-kind': t.kind, 'data-user': t.user_id },
      el('td', {}, fmtTime(t.time, true)),
      el('td', {}, el('span', { class: `badge ${t.kind}` }, KIND_LABEL[t.kind] || t.kind)),
      el('td', {}, userLink(t.user_id)),
      el('td', { class: 'id' }, t.order_id || ''),
      el('td', { class: 'num' }, amount),
      el('td', {}, t.platform || ''),
      el('td', {}, t.reason || ''));
  });
  if (rows.length === 0) rows.push(el('tr', {}, el('td', { colSpan: 7, class: 'muted' }, 'no transactions yet')));
  state.seenTx = seen;
  $('tx-feed').replaceChildren(...rows);
}

// ---------- fraud ----------

function reasonText(r) {
  const conds = (r.conditions || []).map((c) => `${c.measure} ${Number(c.value.toFixed(2))} ${c.compare} ${c.limit}`).join(', ');
  return conds ? `${r.rule} (${conds})` : r.rule;
}

async function refreshFraud() {
  state.fraudAt = Date.now();
  const [stats, alerts, mon] = await Promise.all([
    api('/api/v1/fraud/stats?hours=24'),
    api('/api/v1/fraud/alerts?kind=decision&limit=50'),
    api('/api/v1/fraud/alerts?kind=monitoring&limit=20'),
  ]);
  const range = $('fraud-range');
  range.dataset.from = stats.from;
  range.dataset.to = stats.to;
  range.textContent = `${fmtDateTime(stats.from)} – ${fmtDateTime(stats.to)}${stats.truncated ? ' (newest 20,000)' : ''}`;
  setNum('fraud-decisions', stats.decisions);
  setNum('fraud-blocked', (stats.by_action || {}).block || 0);
  setNum('fraud-reviewed', (stats.by_action || {}).review || 0);
  setNum('fraud-monitoring', stats.monitoring_alerts);
  const lat = $('fraud-latency');
  lat.dataset.p50 = String(stats.latency_p50_ms);
  lat.dataset.p99 = String(stats.latency_p99_ms);
  lat.textContent = stats.decisions ? `${Math.round(stats.latency_p50_ms)} ms / ${Math.round(stats.latency_p99_ms)} ms` : '–';
  const truth = $('fraud-truth');
  const g = stats.ground_truth;
  truth.dataset.precision = g ? String(g.precision) : '';
  truth.dataset.recall = g ? String(g.recall) : '';
  truth.dataset.fraud = g ? String(g.fraud_orders) : '';
  truth.textContent = g
    ? `${g.flagged_orders ? g.precision.toFixed(3) : '–'} / ${g.recall.toFixed(3)} (${intFmt.format(g.fraud_orders)} fraud orders labelled${g.truncated ? ', newest' : ''})`
    : 'no labels in this period';
  const rules = (stats.rule_hits || []).map((r) => el('tr', { 'data-rule': r.id, 'data-value': String(r.value) },
    el('td', { class: 'id' }, r.id), el('td', { class: 'num' }, intFmt.format(r.value))));
  if (rules.length === 0) rules.push(el('tr', {}, el('td', { colSpan: 2, class: 'muted' }, 'no rule has fired')));
  $('fraud-rules').replaceChildren(...rules);
  charts.fraudScores.data.labels = (stats.scores || []).map((_, i) => (i === 9 ? '90-100' : `${i * 10}-${i * 10 + 9}`));
  charts.fraudScores.data.datasets[0].data = stats.scores || [];
  charts.fraudScores.update();

  const rows = (alerts.alerts || []).map((a) => el('tr', { class: `alert ${a.action}`, 'data-event': a.event_id, 'data-action': a.action, 'data-user': a.user_id },
    el('td', {}, fmtTime(a.decided_at, true)),
    el('td', {}, el('span', { class: `badge ${a.action}` }, a.action)),
    el('td', { class: 'num' }, String(a.score)),
    el('td', {}, KIND_LABEL[a.kind] || a.kind),
    el('td', {}, a.user_id ? userLink(a.user_id) : ''),
    el('td', { class: 'id' }, a.order_id || ''),
    el('td', { class: 'num' }, a.currency ? fmtMoney(a.amount_minor || 0, a.currency) : ''),
    el('td', {}, (a.reasons || []).map(reasonText).join('; '))));
  if (rows.length === 0) rows.push(el('tr', {}, el('td', { colSpan: 8, class: 'muted' }, 'no alerts in the last 24 hours')));
  $('fraud-alerts').replaceChildren(...rows);

  const mrows = (mon.alerts || []).map((a) => {
    const m = a.monitoring || {};
    return el('tr', { 'data-event': a.event_id },
      el('td', {}, fmtDateTime(m.minute)),
      el('td', {}, `${m.payment_method} · ${m.currency} · ${m.country}`),
      el('td', {}, (a.reasons || []).map((r) => `${r.rule} ${Number(r.value.toFixed(2))} ≥ ${Number(r.limit.toFixed(2))}`).join('; ')),
      el('td', { class: 'num' }, intFmt.format(m.attempts || 0)),
      el('td', { class: 'num' }, intFmt.format(m.failed || 0)),
      el('td', { class: 'num' }, `${(m.baseline_attempts || 0).toFixed(1)} / ${(m.baseline_failed || 0).toFixed(1)}`));
  });
  if (mrows.length === 0) mrows.push(el('tr', {}, el('td', { colSpan: 6, class: 'muted' }, 'no segment has left its baseline')));
  $('fraud-monitoring-alerts').replaceChildren(...mrows);
}

// ---------- user lookup ----------

async function refreshUser() {
  const id = state.user;
  if (!id || state.userLoading === id) return; // that lookup is already on its way
  state.userAt = Date.now();
  state.userLoading = id;
  try {
    await showUser(id);
  } finally {
    if (state.userLoading === id) state.userLoading = '';
  }
}

async function showUser(id) {
  const status = $('user-status');
  const out = $('user-result');
  let body;
  try {
    body = await api(`/api/v1/users/${encodeURIComponent(id)}?limit=20`);
  } catch (e) {
    status.textContent = e.message;
    status.className = 'error-text';
    out.dataset.user = id;
    out.dataset.sessions = '0';
    out.replaceChildren();
    return;
  }
  if (id !== state.user) return; // a newer lookup started meanwhile
  const sessions = body.sessions || [];
  status.className = 'muted';
  status.textContent = `${sessions.length} session${sessions.length === 1 ? '' : 's'}, newest first`;
  out.dataset.user = body.user_id || id;
  out.dataset.sessions = String(sessions.length);
  if (sessions.length === 0) {
    out.replaceChildren(el('p', { class: 'card muted' }, `No sessions recorded for ${id}.`));
    return;
  }
  out.replaceChildren(...sessions.map((s) => {
    const recent = (s.recent || []).map((e) =>
      el('tr', { 'data-kind': e.kind },
        el('td', {}, fmtTime(e.time, true)),
        el('td', {}, e.kind),
        el('td', { class: 'id' }, e.product_id || ''),
        el('td', { class: 'num' }, e.currency ? fmtMoney(e.amount_minor || 0, e.currency) : '')));
    return el('article', { class: 'card session', 'data-session': s.session_id, 'data-testid': 'user-session' },
      el('h3', {}, el('span', { class: 'id' }, s.session_id), ' ',
        el('span', { class: `badge ${s.closed ? 'closed' : 'open'}` }, s.closed ? 'closed' : 'open'), ' ',
        s.outcome ? el('span', { class: 'badge outcome' }, s.outcome) : ''),
      el('p', { class: 'muted' }, `${s.platform} · ${fmtDateTime(s.start)} – ${fmtDateTime(s.end)}`),
      el('dl', { class: 'kpis small' },
        el('div', {}, el('dt', {}, 'Events'), el('dd', {}, intFmt.format(s.events || 0))),
        el('div', {}, el('dt', {}, 'Page views'), el('dd', {}, intFmt.format(s.page_views || 0))),
        el('div', {}, el('dt', {}, 'Cart adds'), el('dd', {}, intFmt.format(s.cart_adds || 0))),
        el('div', {}, el('dt', {}, 'Checkouts'), el('dd', {}, intFmt.format(s.checkouts || 0))),
        el('div', {}, el('dt', {}, 'Orders'), el('dd', {}, intFmt.format(s.orders || 0))),
        el('div', { class: 'wide' }, el('dt', {}, 'Revenue'), el('dd', {}, moneyText(s.revenue)))),
      recent.length
        ? el('table', { class: 'grid' },
          el('thead', {}, el('tr', {}, el('th', {}, 'Time'), el('th', {}, 'Event'), el('th', {}, 'Product'), el('th', { class: 'num' }, 'Amount'))),
          el('tbody', {}, ...recent))
        : el('p', { class: 'muted' }, 'no recent events'));
  }));
}

function lookUp(id) {
  state.user = id.trim();
  $('user-id').value = state.user;
  $('user-status').className = 'muted';
  $('user-status').textContent = 'looking up…';
  return refreshUser();
}

// ---------- refresh scheduling ----------

// A refresh names what to refetch: live (overview numbers, charts and funnel, and the
// products section's tops, which move with them), tx (the transaction feed) or all (also
// what only changes on request or slowly: trends, the user lookup). One refresh runs at a
// time; requests that arrive meanwhile fold into one more run, so a burst of updates never
// queues a burst of requests.
const ALL = { live: true, tx: true, all: true };
let running = false;
let pending = null;

function merge(a, b) {
  if (!a) return { ...b };
  return { live: a.live || b.live, tx: a.tx || b.tx, all: a.all || b.all };
}

async function refresh(what) {
  pending = merge(pending, what);
  if (running) return;
  running = true;
  try {
    while (pending) {
      const w = pending;
      pending = null;
      const jobs = [];
      if (w.live || w.all) jobs.push(refreshOverview());
      if (state.section === 'products') {
        if (w.live || w.all) jobs.push(refreshTops());
        if (w.all || Date.now() - state.trendsAt > TRENDS_EVERY) jobs.push(refreshTrends());
      }
      if (state.section === 'transactions' && (w.tx || w.all)) jobs.push(refreshTransactions());
      if (state.section === 'fraud' && (w.all || Date.now() - state.fraudAt > FRAUD_EVERY)) jobs.push(refreshFraud());
      if (state.section === 'user' && state.user && (w.all || Date.now() - state.userAt > USER_EVERY)) jobs.push(refreshUser());
      const results = await Promise.allSettled(jobs);
      const failed = results.find((r) => r.status === 'rejected');
      showError(failed ? failed.reason : null);
      if (!failed) {
        const lu = $('last-update');
        const now = new Date();
        lu.textContent = now.toLocaleTimeString('en-GB');
        lu.dataset.time = now.toISOString();
      }
    }
  } finally {
    running = false;
  }
}

// The update event carries {"<platform>": <the /api/v1/live?windows=1 body>} (docs/api.md):
// the overview is refetched when the selected platform's newest window changed, the feed
// when the counts of transactions did. Data that cannot be read refetches everything.
const seen = { live: '', tx: '' };

function onUpdate(ev) {
  let data = null;
  try {
    data = JSON.parse(ev.data);
  } catch (e) {
    // handled below
  }
  const body = data && data[state.platform];
  const all = (data && data.all) || body;
  if (!body || !all) {
    refresh(ALL);
    return;
  }
  // Tops are over all platforms, so a change anywhere refetches the live part.
  const liveKey = JSON.stringify([body.windows || [], all.windows || []]);
  const txKey = JSON.stringify((all.windows || []).map((w) => [w.start, w.orders, w.payments_failed, w.refunds, w.chargebacks]));
  const what = { live: liveKey !== seen.live, tx: txKey !== seen.tx, all: false };
  seen.live = liveKey;
  seen.tx = txKey;
  if (what.live || what.tx) refresh(what);
}

function setConnection(s, text) {
  const c = $('connection');
  c.className = `status ${s}`;
  c.dataset.state = s;
  c.textContent = text;
}

function connect() {
  const es = new EventSource('/api/v1/events');
  es.addEventListener('open', () => {
    setConnection('live', 'live');
    refresh(ALL); // whatever changed while disconnected
  });
  es.addEventListener('update', (ev) => {
    setConnection('live', 'live');
    onUpdate(ev);
  });
  // EventSource reconnects by itself; the badge says so meanwhile.
  es.addEventListener('error', () => setConnection('down', es.readyState === EventSource.CLOSED ? 'disconnected' : 'reconnecting'));
}

// ---------- navigation ----------

function route() {
  const h = decodeURIComponent(location.hash.replace(/^#/, ''));
  let section = h.split('/')[0] || 'overview';
  if (!['overview', 'products', 'transactions', 'fraud', 'user'].includes(section)) section = 'overview';
  state.section = section;
  for (const s of document.querySelectorAll('main > section')) s.hidden = s.id !== section;
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.section === section);
  if (section === 'user' && h.startsWith('user/') && h.slice(5) !== state.user) {
    lookUp(h.slice(5));
  }
  refresh(ALL);
}

function init() {
  try {
    makeCharts();
  } catch (e) {
    showError(e);
    return;
  }
  $('platform').addEventListener('change', (e) => {
    state.platform = e.target.value;
    state.trendsAt = 0;
    seen.live = '';
    refresh(ALL);
  });
  $('top-granularity').addEventListener('change', () => refresh(ALL));
  $('top-n').addEventListener('change', () => refresh(ALL));
  $('tx-kind').addEventListener('change', () => {
    state.seenTx = new Set();
    refresh(ALL);
  });
  $('user-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const id = $('user-id').value.trim();
    if (!id) return;
    // The hash makes a lookup linkable; route() runs the lookup.
    const hash = `#user/${encodeURIComponent(id)}`;
    if (location.hash === hash) lookUp(id);
    else location.hash = hash;
  });
  window.addEventListener('hashchange', route);
  route();
  connect();
}

init();

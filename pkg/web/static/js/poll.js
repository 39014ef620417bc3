// The share page: show one poll, vote on it (with an account, or
// anonymously with an invite code or a proof of work where the poll allows),
// and watch its results move over the live socket.
import { request, tokens, describe, showError, retryable, ApiError, uuid } from './api.js';
import { solve } from './pow.js';
import { copyField } from './share.js';
import { keepReceipt, showReceipt, wireReceipt } from './receipt.js';

const $ = (id) => document.getElementById(id);

const state = {
  id: '',
  poll: null,
  user: null,
  visible: false, // the last results read succeeded
  final: false, // the final tally is on screen
  socket: null,
  backoff: 1000,
  voted: null, // option ids the caller voted for
  closing: false, // pollClosed is running
  ticks: 0,
  retryResults: false, // the last results read failed for a reason that passes
  shown: null, // { tally, at }: the kind and as_of (ms) of the results on screen
};

// credKey holds what an anonymous voter voted with on this poll (invite
// code or solved challenge): reading the own vote and the results needs it.
const credKey = () => 'tally.cred.' + state.id;

function credHeaders() {
  if (tokens.signedIn()) return {};
  try {
    const c = JSON.parse(sessionStorage.getItem(credKey()) || 'null');
    if (c && c.invite) return { 'X-Invite-Code': c.invite };
    if (c && c.pow) return { 'X-Proof-Of-Work': c.pow };
  } catch (_) { /* none */ }
  return {};
}

// reader is the token results and the own vote are read with.
function reader() {
  return tokens.account() || tokens.anonymous();
}

// voterReads is how reads that name the voter are sent (the receipt's
// request status and check).
function voterReads() {
  return { token: reader(), headers: credHeaders() };
}

function visibility(p) {
  const s = p.settings || {};
  if (s.results_visibility) return s.results_visibility;
  return s.show_results_during_voting === false ? 'after_vote' : 'always';
}

function notice(text) {
  const n = $('notice');
  n.textContent = text;
  n.hidden = !text;
}

export async function startPoll(id, user) {
  state.id = id;
  state.user = user;
  if (!(await loadPoll(true))) return;
  renderOwner();
  await refreshMyVote();
  await refreshResults();
  showReceipt(state.id, voterReads);
  setInterval(tick, 3000);
}

// loadPoll reads the poll. The first read, with nothing on screen yet,
// waits out a busy or unreachable server (retrying as Retry-After says);
// later reads keep what is shown when they fail.
async function loadPoll(first) {
  for (let attempt = 0; ; attempt++) {
    try {
      const { data } = await request('/v1/polls/' + state.id, { token: tokens.account() });
      state.poll = data;
      break;
    } catch (err) {
      if (!first) return false;
      if (retryable(err) && attempt < 20) {
        const wait = Math.max(1, err.retryAfter || 2);
        notice(describe(err).replace(/ Please try again.*$/, '') + ' Retrying in ' + wait + ' s…');
        await new Promise((r) => setTimeout(r, wait * 1000));
        continue;
      }
      notice(describe(err));
      $('view-poll').hidden = true;
      return false;
    }
  }
  notice('');
  renderPoll();
  return true;
}

function fmtTime(s) {
  return new Date(s).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

function renderPoll() {
  const p = state.poll;
  document.title = p.title + ' · Tally';
  $('poll-title').textContent = p.title;
  $('poll-description').textContent = p.description || '';
  $('poll-description').hidden = !p.description;
  const st = $('poll-status');
  st.className = 'status ' + p.status;
  st.textContent = { active: 'Open for voting', closed: 'Closed', draft: 'Not open yet' }[p.status] || p.status;
  $('poll-deadline').textContent = p.status === 'closed'
    ? 'Voting ended ' + fmtTime(p.closed_at || p.end_time) + '.'
    : p.status === 'draft' ? 'Voting opens ' + fmtTime(p.start_time) + '.' : 'Voting ends ' + fmtTime(p.end_time) + '.';
  renderForm();
}

function renderForm() {
  const p = state.poll;
  const s = p.settings || {};
  const form = $('vote-form');
  const signedIn = tokens.signedIn();
  const canVote = p.status === 'active' && !state.voted && (signedIn || s.allow_anonymous);
  form.hidden = !canVote;
  $('login-to-vote').hidden = !(p.status === 'active' && !state.voted && !signedIn && !s.allow_anonymous);
  $('login-instead').hidden = !(p.status === 'active' && !state.voted && !signedIn && s.allow_anonymous);
  // The share page's path, also from the embed widget: signing in happens
  // there.
  for (const a of document.querySelectorAll('.login-link')) a.href = '/?next=' + encodeURIComponent('/p/' + state.id);
  if (!canVote) return;
  const box = $('vote-options');
  if (box.dataset.built !== 'yes') {
    box.dataset.built = 'yes';
    const multi = s.allow_multiple_options;
    const max = s.max_votes_per_user || 0;
    $('vote-legend').textContent = multi
      ? (max > 0 ? 'Choose up to ' + max : 'Choose any number')
      : 'Choose one';
    const opts = [...p.options].sort((a, b) => a.display_order - b.display_order);
    for (const o of opts) {
      const label = document.createElement('label');
      label.className = 'choice';
      const input = document.createElement('input');
      input.type = multi ? 'checkbox' : 'radio';
      input.name = 'choice';
      input.value = o.option_id;
      label.append(input, ' ', o.text);
      box.append(label);
    }
  }
  const anonymous = !signedIn;
  $('invite-box').hidden = !(anonymous && s.anonymous_access === 'invite');
  $('vote-how').textContent = !anonymous ? '' : s.anonymous_access === 'pow'
    ? 'You are voting without an account. Your browser will work for a few seconds to prove it is not a bot.'
    : 'You are voting without an account.';
}

function optionText(optionId) {
  const o = state.poll.options.find((x) => x.option_id === optionId);
  return o ? o.text : optionId;
}

function showMyVote(ids) {
  state.voted = ids;
  const el = $('my-vote');
  el.hidden = false;
  el.textContent = 'You voted for ' + ids.map((i) => '“' + optionText(i) + '”').join(', ') + '.';
  renderForm();
}

async function refreshMyVote() {
  const tok = reader();
  if (!tok) return;
  try {
    const { data } = await request('/v1/polls/' + state.id + '/votes/me', { token: tok, headers: credHeaders() });
    if (data.has_voted) showMyVote(data.option_ids && data.option_ids.length ? data.option_ids : [data.option_id]);
  } catch (_) { /* not a reason to stop the page */ }
}

function hiddenText() {
  const p = state.poll;
  if (p.status === 'closed') return 'The results are not public.';
  switch (visibility(p)) {
    case 'after_vote': return 'Results appear once you have voted.';
    case 'after_close': return 'Results appear when the poll closes.';
    case 'owner_only': return 'Only the poll’s owner sees the results.';
    default: return 'The results are hidden for now.';
  }
}

async function refreshResults() {
  const closed = state.poll.status === 'closed';
  const tally = closed ? 'final' : 'live';
  try {
    const { data } = await request('/v1/polls/' + state.id + '/results?tally=' + tally,
      { token: reader(), headers: credHeaders() });
    state.visible = true;
    state.retryResults = false;
    renderResults(data);
    if (!closed) connectLive();
  } catch (err) {
    if (err instanceof ApiError && err.code === 'RESULTS_HIDDEN') {
      state.visible = false;
      $('results').hidden = true;
      $('results-hidden').hidden = false;
      $('results-hidden').textContent = hiddenText();
    } else {
      // Shown where the numbers would be; the tick tries again.
      state.retryResults = true;
      $('results-hidden').hidden = false;
      $('results-hidden').textContent = describe(err);
    }
  }
}

function renderResults(r) {
  // The socket's frames and a results read race: a read answered from a
  // cache a moment old can arrive after a newer frame. The older document
  // is dropped, so the bars never go back (the socket sends a change once).
  const at = Date.parse(r.as_of);
  if (state.shown && state.shown.tally === r.tally && at < state.shown.at) return;
  state.shown = { tally: r.tally, at };
  $('results').hidden = false;
  $('results-hidden').hidden = true;
  const final = r.tally === 'final' && r.status === 'closed';
  if (final) state.final = true;
  const list = $('results-list');
  const have = new Map(Array.from(list.children, (li) => [li.dataset.option, li]));
  let leader = -1;
  for (const o of r.options) leader = Math.max(leader, o.votes);
  r.options.forEach((o, i) => {
    let li = have.get(o.option_id);
    if (!li) {
      li = document.createElement('li');
      li.dataset.option = o.option_id;
      li.innerHTML = '<div class="bar-head"><span class="bar-label"></span><span class="bar-count"></span></div>' +
        '<div class="bar-track" aria-hidden="true"><div class="bar-fill"></div></div>';
      list.append(li);
    }
    if (list.children[i] !== li) list.insertBefore(li, list.children[i]);
    li.querySelector('.bar-label').textContent = o.label;
    const pct = Math.round(o.percentage);
    li.querySelector('.bar-count').textContent = o.votes + (o.votes === 1 ? ' vote' : ' votes') + ' · ' + pct + '%';
    // CSSOM, not a style attribute: allowed under style-src 'self'.
    li.querySelector('.bar-fill').style.width = Math.min(100, o.percentage) + '%';
    li.classList.toggle('leader', final && o.votes === leader && leader > 0);
    li.classList.toggle('mine', !!(state.voted && state.voted.includes(o.option_id)));
  });
  for (const [idx, li] of have) if (!r.options.some((o) => o.option_id === idx)) li.remove();
  const n = r.total_votes;
  $('results-total').textContent = (final ? 'Final tally: ' : '') + n + (n === 1 ? ' vote' : ' votes');
  $('results-asof').textContent = (final ? 'Counted from every ballot, ' : 'As of ') +
    new Date(r.as_of).toLocaleTimeString() + '.';
  if (r.status === 'closed' && state.poll.status !== 'closed') pollClosed();
}

// pollClosed reloads the poll and shows the final tally once.
async function pollClosed() {
  if (state.closing) return;
  state.closing = true;
  if (state.socket) state.socket.close(1000);
  await loadPoll();
  await refreshResults();
  renderOwner();
  state.closing = false;
}

function connectLive() {
  if (state.socket || state.final || !('WebSocket' in window)) return;
  const tok = reader();
  const proto = location.protocol === 'https:' ? 'wss://' : 'ws://';
  const url = proto + location.host + '/v1/polls/' + state.id + '/live' +
    (tok ? '?access_token=' + encodeURIComponent(tok.token) : '');
  const ws = new WebSocket(url);
  state.socket = ws;
  ws.addEventListener('open', () => {
    state.backoff = 1000;
    document.body.dataset.live = 'open';
  });
  ws.addEventListener('message', (ev) => {
    let f;
    try { f = JSON.parse(ev.data); } catch (_) { return; }
    // A frame is the results document, flat beside its type or under
    // "results"; anything else (a ping, a notice) is ignored.
    const r = f && (Array.isArray(f.options) ? f : f.results);
    if (r && Array.isArray(r.options)) renderResults(r);
  });
  ws.addEventListener('close', (ev) => {
    state.socket = null;
    document.body.dataset.live = 'closed';
    if (state.final || state.poll.status === 'closed') return;
    if (ev.code === 4403) {
      // The owner hid the results meanwhile: read the new mode, then say so.
      loadPoll().then(refreshResults);
      return;
    }
    if (ev.code === 4401) tokens.logout();
    const wait = state.backoff;
    state.backoff = Math.min(state.backoff * 2, 30000);
    setTimeout(refreshResults, wait);
  });
}

// tick notices what the socket cannot tell: the end time passing, and a
// hidden-results poll closing.
async function tick() {
  const p = state.poll;
  if (!p || state.final) return;
  const now = Date.now();
  state.ticks = (state.ticks || 0) + 1;
  // Every fifth tick re-reads the poll whatever else: an owner's close or
  // new end time reaches a page whose socket carries only counts.
  if (state.retryResults && !state.socket) await refreshResults();
  const due = (p.status === 'active' && Date.parse(p.end_time) <= now) ||
    (p.status === 'draft' && Date.parse(p.start_time) <= now) || state.ticks % 5 === 0;
  if (due || !state.visible) {
    const before = p.status;
    const mode = visibility(p);
    if (!(await loadPoll())) return;
    if (state.poll.status !== before || visibility(state.poll) !== mode) {
      if (state.poll.status === 'closed' && state.socket) state.socket.close(1000);
      renderOwner();
      await refreshResults();
    }
  }
}

// ---- voting ----

let voteKey = '';

function chosen() {
  return Array.from(document.querySelectorAll('#vote-options input:checked'), (i) => i.value);
}

$('vote-form').addEventListener('change', () => { voteKey = ''; });
wireReceipt();

$('vote-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const form = $('vote-form');
  showError(form, null);
  const s = state.poll.settings || {};
  const ids = chosen();
  const err = (text) => { form.querySelector('[data-error]').textContent = text; };
  if (ids.length === 0) return err('Please choose an option.');
  const max = s.max_votes_per_user || 0;
  if (s.allow_multiple_options && max > 0 && ids.length > max) return err('Please choose at most ' + max + '.');
  const submit = $('vote-submit');
  const focused = form.contains(document.activeElement);
  submit.disabled = true;
  form.dataset.state = 'sending';
  try {
    await castVote(ids);
    // The form is gone: keep a keyboard user's place on what replaced it,
    // before the results read below (a test or a screen reader sees the
    // confirmation as soon as it shows).
    if (focused) $('my-vote').focus();
    await refreshResults();
  } catch (e) {
    // A refusal is final for that request: the next try is a new one.
    if (!retryable(e)) voteKey = '';
    if (e instanceof ApiError && e.code === 'ALREADY_VOTED') await refreshMyVote();
    showError(form, e);
  } finally {
    form.dataset.state = 'done'; // the vote and the results read after it
    submit.disabled = false;
    $('vote-progress').textContent = '';
    // Disabling the button dropped focus; give it back after a refusal.
    if (focused && !form.hidden && !form.contains(document.activeElement)) submit.focus();
  }
});

async function voterToken() {
  const acc = tokens.account();
  if (acc) return acc;
  const anon = tokens.anonymous();
  if (anon) return anon;
  const { data } = await request('/v1/auth/anonymous', { method: 'POST', token: null });
  return tokens.keepAnonymous(data);
}

async function castVote(ids) {
  const s = state.poll.settings || {};
  const progress = $('vote-progress');
  const tok = await voterToken();
  if (!voteKey) voteKey = uuid();
  const headers = { 'Idempotency-Key': voteKey };
  let cred = null;
  if (!tokens.signedIn() && s.anonymous_access === 'invite') {
    const code = $('invite-code').value.trim();
    if (!code) throw new ApiError(403, 'INVITE_REQUIRED', '');
    headers['X-Invite-Code'] = code;
    cred = { invite: code };
  } else if (!tokens.signedIn() && s.anonymous_access === 'pow') {
    const { data: ch } = await request('/v1/polls/' + state.id + '/challenge', { token: null });
    progress.textContent = 'Proving this is not a bot… 0%';
    const sol = await solve(ch.challenge, ch.difficulty, (pct) => {
      progress.textContent = 'Proving this is not a bot… ' + pct + '%';
    });
    headers['X-Proof-Of-Work'] = ch.challenge + ':' + sol;
    cred = { pow: headers['X-Proof-Of-Work'] };
  }
  const body = s.allow_multiple_options ? { option_ids: ids } : { option_id: ids[0] };
  progress.textContent = 'Sending your vote…';
  let res;
  for (let attempt = 0; ; attempt++) {
    try {
      res = await request('/v1/polls/' + state.id + '/votes', { method: 'POST', body, token: tok, headers });
      break;
    } catch (e) {
      if (!retryable(e) || attempt >= 3) throw e;
      // Busy: wait as told and send the same request again (same key, so
      // never a second ballot).
      for (let left = e.retryAfter || 2; left > 0; left--) {
        progress.textContent = describe(e).replace(/ Please try again.*$/, '') + ' Retrying in ' + left + ' s…';
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }
  if (cred) sessionStorage.setItem(credKey(), JSON.stringify(cred));
  // The receipt: a 200 carries it with the salt; a 202 carries the salt
  // (first attempt only) and the request status the receipt, once recorded.
  const d = res.data || {};
  if (res.status === 200 && d.receipt) {
    keepReceipt(state.id, { receipt: d.receipt, salt: d.salt, choice: { option_ids: d.option_ids || ids } });
  } else if (res.status === 202) {
    keepReceipt(state.id, { vote_id: d.vote_id, salt: d.salt, request_id: d.request_id, choice: { option_ids: ids } });
    const st = await waitForRequest(d.request_id, tok, headers);
    if (st && st.receipt) keepReceipt(state.id, { receipt: st.receipt });
  }
  voteKey = '';
  showMyVote(ids);
  showReceipt(state.id, voterReads);
}

async function waitForRequest(requestId, tok, headers) {
  const progress = $('vote-progress');
  progress.textContent = 'Your vote is accepted and being counted…';
  const h = Object.assign({}, headers);
  delete h['Idempotency-Key'];
  for (let i = 0; i < 60; i++) {
    const { data } = await request('/v1/polls/' + state.id + '/votes/requests/' + requestId, { token: tok, headers: h });
    if (data.state === 'completed') return data;
    if (data.state === 'failed') {
      const e = data.error || {};
      throw new ApiError(409, e.code || 'INTERNAL', e.message || '');
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  // Still pending: the vote is durably accepted and will be counted (the
  // receipt panel fetches the receipt on the next load).
  return null;
}

// ---- owner ----

function renderOwner() {
  if (!$('owner')) return; // the embed widget has no owner's tools
  const p = state.poll;
  const own = state.user && p && state.user.user_id === p.creator_id;
  $('owner').hidden = !own;
  if (!own) return;
  $('owner-link').value = location.origin + '/p/' + p.poll_id;
  $('owner-close').hidden = p.status === 'closed';
  $('vis-select').value = visibility(p);
  const s = p.settings || {};
  $('mint-form').hidden = !(s.allow_anonymous && s.anonymous_access === 'invite');
  $('embed-origins').value = (s.embed_origins || []).join('\n');
  $('embed-code').value = '<iframe src="' + location.origin + '/embed/' + p.poll_id +
    '" title="Tally poll" width="420" height="520"></iframe>';
}

// The owner's tools exist on the share page only (not in the embed widget).
if ($('owner')) wireOwner();

function wireOwner() {
  $('owner-copy').addEventListener('click', () => copyField($('owner-link'), $('owner-copy-status')));

  $('vis-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError($('owner'), null);
    const v = $('vis-select').value;
    try {
      // The alias agrees with the mode (true only for always).
      const { data } = await request('/v1/polls/' + state.id, {
        method: 'PATCH', body: { settings: { results_visibility: v, show_results_during_voting: v === 'always' } },
      });
      state.poll = data;
      $('vis-status').textContent = 'Saved.';
      renderPoll();
    } catch (err) {
      showError($('owner'), err);
    }
  });

  $('embed-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError($('owner'), null);
    const origins = $('embed-origins').value.split(/\s+/).filter((o) => o !== '');
    try {
      const { data } = await request('/v1/polls/' + state.id, {
        method: 'PATCH', body: { settings: { embed_origins: origins } },
      });
      state.poll = data;
      $('embed-status').textContent = origins.length ? 'Saved.' : 'Saved: no site may embed this poll.';
      renderOwner();
    } catch (err) {
      $('embed-status').textContent = '';
      showError($('owner'), err);
    }
  });

  $('owner-close').addEventListener('click', async () => {
    const btn = $('owner-close');
    if (btn.dataset.armed !== 'yes') {
      btn.dataset.armed = 'yes';
      btn.textContent = 'Confirm: close now (nobody can vote after this)';
      return;
    }
    btn.disabled = true;
    try {
      await request('/v1/polls/' + state.id, { method: 'PATCH', body: { status: 'closed' } });
      await pollClosed();
    } catch (err) {
      showError($('owner'), err);
    } finally {
      btn.disabled = false;
      btn.dataset.armed = '';
      btn.textContent = 'Close the poll now';
    }
  });

  $('mint-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError($('owner'), null);
    const count = parseInt($('mint-count').value || '0', 10);
    try {
      const { data } = await request('/v1/polls/' + state.id + '/invites', { method: 'POST', body: { count } });
      const out = $('mint-codes');
      out.value = data.codes.join('\n');
      out.hidden = false;
      out.focus();
      out.select();
    } catch (err) {
      showError($('owner'), err);
    }
  });
}

// The home view: log in or register, create a poll and share it, list my
// polls, close one early.
import { request, tokens, showError, uuid } from './api.js';
import { copyField } from './share.js';

const $ = (id) => document.getElementById(id);

// next is where a visitor sent to log in from a share page goes back to.
function next() {
  const n = new URLSearchParams(location.search).get('next') || '';
  return /^\/p\/[0-9a-fA-F-]{32,36}$/.test(n) ? n : '';
}

export function startHome(user, refreshWho) {
  if (user) {
    if (next()) location.replace(next());
    else signedIn();
    return;
  }
  $('auth').hidden = false;
  const login = $('login-form');
  login.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError(login, null);
    try {
      const { data } = await request('/v1/auth/login', {
        method: 'POST', token: null,
        body: { login: login.elements.login.value.trim(), password: login.elements.password.value },
      });
      tokens.keepAccount(data);
      if (next()) {
        location.assign(next());
        return;
      }
      await refreshWho();
      $('auth').hidden = true;
      signedIn();
    } catch (err) {
      showError(login, err);
    }
  });
  const reg = $('register-form');
  reg.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError(reg, null);
    const body = {
      email: reg.elements.email.value.trim(),
      username: reg.elements.username.value.trim(),
      password: reg.elements.password.value,
    };
    try {
      await request('/v1/auth/register', { method: 'POST', token: null, body });
      const { data } = await request('/v1/auth/login', {
        method: 'POST', token: null, body: { login: body.username, password: body.password },
      });
      tokens.keepAccount(data);
      if (next()) {
        location.assign(next());
        return;
      }
      await refreshWho();
      $('auth').hidden = true;
      signedIn();
    } catch (err) {
      showError(reg, err);
    }
  });
}

function signedIn() {
  $('auth').hidden = true;
  $('create').hidden = false;
  $('mine').hidden = false;
  setUpCreate();
  loadMine(true);
}

function addOption(list, text) {
  const li = document.createElement('li');
  const n = list.children.length + 1;
  const input = document.createElement('input');
  input.name = 'option';
  input.maxLength = 200;
  input.value = text || '';
  input.setAttribute('aria-label', 'Option ' + n);
  const rm = document.createElement('button');
  rm.type = 'button';
  rm.className = 'link';
  rm.textContent = 'Remove';
  rm.setAttribute('aria-label', 'Remove option ' + n);
  rm.addEventListener('click', () => {
    if (list.children.length > 2) li.remove();
  });
  li.append(input, rm);
  list.append(li);
  return input;
}

let createReady = false;

function setUpCreate() {
  if (createReady) return;
  createReady = true;
  const form = $('create-form');
  const list = $('c-options');
  addOption(list);
  addOption(list);
  $('c-add-option').addEventListener('click', () => {
    if (list.children.length < 50) addOption(list).focus();
  });
  $('c-multi').addEventListener('change', (ev) => { $('c-max').disabled = !ev.target.checked; });
  $('c-anon').addEventListener('change', (ev) => { $('c-access').disabled = !ev.target.checked; });
  // One key per filled-in form: a double click or a retry after a network
  // failure creates one poll, not two.
  let key = uuid();
  form.addEventListener('input', () => { key = uuid(); });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError(form, null);
    const options = Array.from(list.querySelectorAll('input'))
      .map((i) => i.value.trim()).filter((t) => t !== '')
      .map((text, i) => ({ text, display_order: i }));
    const multi = $('c-multi').checked;
    const anon = $('c-anon').checked;
    const body = {
      title: $('c-title').value.trim(),
      description: $('c-description').value.trim(),
      options,
      settings: {
        allow_multiple_options: multi,
        results_visibility: $('c-visibility').value,
        // The deprecated alias, always agreeing with the mode (true only for
        // always), for a server that predates results_visibility.
        show_results_during_voting: $('c-visibility').value === 'always',
        allow_anonymous: anon,
        anonymous_access: anon ? $('c-access').value : 'open',
      },
    };
    if (multi) body.settings.max_votes_per_user = parseInt($('c-max').value || '0', 10);
    if ($('c-end').value) body.end_time = new Date($('c-end').value).toISOString();
    const submit = form.querySelector('button[type=submit]');
    submit.disabled = true;
    try {
      const { data } = await request('/v1/polls', { method: 'POST', body, headers: { 'Idempotency-Key': key } });
      const link = location.origin + '/p/' + data.poll_id;
      $('share-link').value = link;
      $('open-poll').href = '/p/' + data.poll_id;
      $('created').hidden = false;
      $('share-link').focus();
      $('share-link').select();
      loadMine(true);
    } catch (err) {
      showError(form, err);
    } finally {
      submit.disabled = false;
    }
  });
  $('copy-link').addEventListener('click', () => copyField($('share-link'), $('copy-status')));
}

let cursor = '';

async function loadMine(fresh) {
  const box = $('mine');
  const list = $('mine-list');
  if (fresh) cursor = '';
  showError(box, null);
  try {
    const q = '/v1/polls?limit=20' + (cursor ? '&cursor=' + encodeURIComponent(cursor) : '');
    const { data } = await request(q);
    if (fresh) list.replaceChildren();
    for (const p of data.polls || []) list.append(mineItem(p));
    cursor = data.next_cursor || '';
    $('mine-more').hidden = !cursor;
    $('mine-empty').hidden = list.children.length > 0;
  } catch (err) {
    showError(box, err);
  }
}
$('mine-more').addEventListener('click', () => loadMine(false));

function mineItem(p) {
  const li = document.createElement('li');
  const a = document.createElement('a');
  a.href = '/p/' + p.poll_id;
  a.textContent = p.title;
  const st = document.createElement('span');
  st.className = 'badge ' + p.status;
  st.textContent = p.status;
  li.append(a, ' ', st);
  if (p.status !== 'closed') {
    const close = document.createElement('button');
    close.type = 'button';
    close.className = 'secondary small';
    close.textContent = 'Close now';
    close.setAttribute('aria-label', 'Close “' + p.title + '” now');
    close.addEventListener('click', async () => {
      // Two clicks: the first asks, the second closes.
      if (close.dataset.armed !== 'yes') {
        close.dataset.armed = 'yes';
        close.textContent = 'Confirm: close now';
        return;
      }
      try {
        await request('/v1/polls/' + p.poll_id, { method: 'PATCH', body: { status: 'closed' } });
        st.textContent = 'closed';
        st.className = 'badge closed';
        close.remove();
      } catch (err) {
        showError($('mine'), err);
      }
    });
    li.append(' ', close);
  }
  return li;
}

// Boots the page: the home view at "/", the share page at "/p/{poll_id}".
import { tokens, me } from './api.js';
import { startHome } from './home.js';
import { startPoll } from './poll.js';

const $ = (id) => document.getElementById(id);

async function showWho() {
  const who = $('who');
  let user = null;
  try { user = await me(); } catch (_) { tokens.logout(); }
  who.hidden = !user;
  if (user) $('who-name').textContent = 'Signed in as ' + user.username;
  return user;
}

$('logout').addEventListener('click', () => {
  tokens.logout();
  location.assign('/');
});

const m = location.pathname.match(/^\/p\/([0-9a-fA-F-]{32,36})\/?$/);
showWho().then((user) => {
  if (m) {
    $('view-poll').hidden = false;
    startPoll(m[1], user);
  } else {
    $('view-home').hidden = false;
    startHome(user, showWho);
  }
});

// Boots the embed widget at /embed/{poll_id}: the share page's poll view
// (poll.js), compact and without the owner's tools. It runs in another
// site's frame, so it signs nobody in: a visitor votes anonymously where
// the poll allows it, and otherwise follows a link to Tally's own page.
import { startPoll } from './poll.js';

const $ = (id) => document.getElementById(id);

const m = location.pathname.match(/^\/embed\/([0-9a-fA-F-]{32,36})\/?$/);
if (m) {
  $('embed-open').href = '/p/' + m[1];
  $('view-poll').hidden = false;
  startPoll(m[1], null);
} else {
  const n = $('notice');
  n.textContent = 'There is no such poll.';
  n.hidden = false;
}

// The voter's receipt: kept in localStorage per poll (so a reload still
// shows it), shown in the "Your receipt" panel, downloadable as JSON with
// its salt, and checked against the receipts route. The check verifies
// the proof here with WebCrypto (Ed25519, SHA-256) when the browser has
// them; otherwise it shows the server's answer and points to the CLI.
import { request } from './api.js';

const $ = (id) => document.getElementById(id);
const storeKey = (pollId) => 'tally.receipt.' + pollId;
const KEYS_PATH = '/.well-known/tally-receipt-keys';

export function loadReceipt(pollId) {
  try { return JSON.parse(localStorage.getItem(storeKey(pollId)) || 'null'); } catch (_) { return null; }
}

// keepReceipt merges what an answer gave into the poll's stored entry: the
// salt and vote id come first (a 202), the signed receipt with a 200 or
// from the request status. A salt is never dropped once given.
export function keepReceipt(pollId, part) {
  const had = loadReceipt(pollId) || {};
  const voteId = (part.receipt && part.receipt.vote_id) || part.vote_id;
  const entry = voteId && had.vote_id && had.vote_id !== voteId ? {} : had;
  for (const [k, v] of Object.entries(part)) if (v !== undefined && v !== null && v !== '') entry[k] = v;
  if (voteId) entry.vote_id = voteId;
  try { localStorage.setItem(storeKey(pollId), JSON.stringify(entry)); } catch (_) { /* storage full or off */ }
  return entry;
}

// fileOf is the downloadable file: {receipt, salt, choice, poll_url, keys_url}.
function fileOf(pollId, e) {
  return { receipt: e.receipt, salt: e.salt || '', choice: e.choice,
    poll_url: location.origin + '/p/' + pollId, keys_url: location.origin + KEYS_PATH };
}

let current = { pollId: '', read: null };

// showReceipt renders the panel for the stored entry, and fetches the
// receipt from the request status when only the 202's part is kept.
// read() gives {token, headers} for reads that name the voter.
export async function showReceipt(pollId, read) {
  const panel = $('receipt');
  if (!panel) return; // the embed widget has no panel
  current = { pollId, read };
  let e = loadReceipt(pollId);
  if (!e) { panel.hidden = true; return; }
  if (!e.receipt && e.request_id && read) {
    try {
      const { token, headers } = read();
      const { data } = await request('/v1/polls/' + pollId + '/votes/requests/' + e.request_id, { token, headers });
      if (data.receipt) e = keepReceipt(pollId, { receipt: data.receipt });
    } catch (_) { /* shown as waiting */ }
  }
  const r = e.receipt;
  $('receipt-vote').textContent = (r && r.vote_id) || e.vote_id || '—';
  $('receipt-at').textContent = r ? new Date(r.recorded_at).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' }) : 'Waiting for the vote to be recorded…';
  $('receipt-kid').textContent = r ? r.kid : '—';
  $('receipt-nosalt').hidden = !!e.salt;
  $('receipt-download').disabled = !r;
  $('receipt-check').disabled = !(r || e.vote_id);
  panel.hidden = false;
}

function download() {
  const e = loadReceipt(current.pollId);
  if (!e || !e.receipt) return;
  const blob = new Blob([JSON.stringify(fileOf(current.pollId, e), null, 2) + '\n'], { type: 'application/json' });
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = 'tally-receipt-' + current.pollId + '-' + e.receipt.vote_id + '.json';
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

async function check() {
  const out = $('receipt-status');
  const e = loadReceipt(current.pollId);
  if (!e) return;
  const voteId = (e.receipt && e.receipt.vote_id) || e.vote_id;
  out.dataset.result = 'checking';
  out.textContent = 'Checking…';
  let a;
  try {
    const { token, headers } = current.read ? current.read() : { token: null, headers: {} };
    ({ data: a } = await request('/v1/polls/' + current.pollId + '/receipts/' + voteId, { token, headers }));
  } catch (err) {
    out.dataset.result = err.code === 'NOT_FOUND' ? 'missing' : 'error';
    out.textContent = err.code === 'NOT_FOUND'
      ? 'The server has no current ballot with this vote id. Keep your receipt file: it is your evidence.'
      : 'The check could not reach the server. Please try again.';
    return;
  }
  const cli = ' To verify it yourself: tally receipt check ' + 'tally-receipt-' + current.pollId + '-' + voteId + '.json --api ' + location.origin;
  if (e.receipt && a.commitment !== e.receipt.commitment) {
    out.dataset.result = 'mismatch';
    out.textContent = 'The server holds a different commitment for this vote id than your receipt. Keep your receipt file and report it.';
    return;
  }
  if (a.status === 'recorded') {
    out.dataset.result = 'recorded';
    out.textContent = 'Recorded as your receipt says. Once the poll is closed and its tally certified, the check also proves it is counted.';
    return;
  }
  if (a.proof_withheld) {
    out.dataset.result = 'included';
    out.textContent = 'Included in the poll’s signed ledger. The proof is withheld while the results are hidden from you.';
    return;
  }
  let verdict;
  try {
    verdict = await verifyHere(e, a);
  } catch (err) {
    // No WebCrypto (plain http off localhost) or no Ed25519 in it: say so
    // and point to the CLI. Anything else is a check that failed.
    const unsupported = !window.crypto || !crypto.subtle || (err && err.name === 'NotSupportedError');
    verdict = unsupported ? null : false;
    out.dataset.why = String((err && err.message) || err);
  }
  if (verdict === null) {
    out.dataset.result = 'included';
    out.textContent = 'Included: the server says your ballot is leaf ' + (a.leaf_index + 1) + ' of ' + a.tree_size + ' in the poll’s signed ledger. This browser cannot check the proof.' + cli;
  } else if (verdict) {
    out.dataset.result = 'verified';
    out.textContent = 'Counted: verified in this browser — your receipt, its place in the poll’s signed ledger (leaf ' + (a.leaf_index + 1) + ' of ' + a.tree_size + ') and the ledger’s signature.';
  } else {
    out.dataset.result = 'failed';
    out.textContent = 'The proof did NOT verify against your receipt. Keep your receipt file and report it.' + cli;
  }
}

// ---- verification with WebCrypto (the same checks as pkg/ledger.CheckReceipt) ----

const enc = new TextEncoder();
const b64u = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(s.length / 4) * 4, '=')), (c) => c.charCodeAt(0));
const uuidBytes = (u) => Uint8Array.from(u.replace(/-/g, '').match(/../g), (h) => parseInt(h, 16));
function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let i = 0;
  for (const p of parts) { out.set(p, i); i += p.length; }
  return out;
}
function be(n, bytes) {
  const b = new Uint8Array(bytes);
  const v = new DataView(b.buffer);
  if (bytes === 8) v.setBigInt64(0, BigInt(n)); else v.setUint32(0, n);
  return b;
}
const sha256 = async (b) => new Uint8Array(await crypto.subtle.digest('SHA-256', b));
const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

function receiptBytes(r) {
  const kid = enc.encode(r.kid);
  return concat(enc.encode('tally-receipt-v1\0'), uuidBytes(r.poll_id), uuidBytes(r.vote_id), b64u(r.commitment),
    be(Date.parse(r.recorded_at), 8), be(r.ballot_version, 4), Uint8Array.of(kid.length), kid);
}

function headBytes(h) {
  const kid = enc.encode(h.kid);
  return concat(enc.encode('tally-ledger-head-v1\0'), uuidBytes(h.poll_id), be(h.size, 8), b64u(h.root),
    be(Date.parse(h.frozen_at), 8), Uint8Array.of(kid.length), kid);
}

// rootFromProof is RFC 9162 §2.1.3.2.
async function rootFromProof(index, size, leaf, path) {
  if (index >= size) return null;
  let fn = index, sn = size - 1;
  let r = await sha256(concat(Uint8Array.of(0), leaf));
  for (const p of path) {
    if (sn === 0) return null;
    if (fn % 2 === 1 || fn === sn) {
      r = await sha256(concat(Uint8Array.of(1), p, r));
      while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
    } else {
      r = await sha256(concat(Uint8Array.of(1), r, p));
    }
    fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : null;
}

// verifyHere: true or false, or a throw when Ed25519 is missing.
async function verifyHere(e, a) {
  const r = e.receipt, h = a.tree_head;
  if (!r || !h || h.poll_id !== r.poll_id || h.size !== a.tree_size) return false;
  const { data: set } = await request(KEYS_PATH, { token: null });
  const key = async (kid) => {
    const j = set.keys.find((k) => k.kid === kid);
    if (!j) return null;
    return crypto.subtle.importKey('jwk', { kty: 'OKP', crv: 'Ed25519', x: j.x }, { name: 'Ed25519' }, false, ['verify']);
  };
  const rk = await key(r.kid), hk = await key(h.kid);
  if (!rk || !hk) return false;
  if (!(await crypto.subtle.verify({ name: 'Ed25519' }, rk, b64u(r.sig), receiptBytes(r)))) return false;
  if (!(await crypto.subtle.verify({ name: 'Ed25519' }, hk, b64u(h.sig), headBytes(h)))) return false;
  const root = await rootFromProof(a.leaf_index, h.size, concat(uuidBytes(r.vote_id), b64u(r.commitment)), (a.proof || []).map(b64u));
  return root !== null && same(root, b64u(h.root));
}

export function wireReceipt() {
  if (!$('receipt')) return;
  $('receipt-download').addEventListener('click', download);
  $('receipt-check').addEventListener('click', check);
}

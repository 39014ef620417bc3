// The REST client: tokens, requests, and errors turned into sentences.
// Tokens live in sessionStorage (this tab only) and travel as
// Authorization: Bearer; the page never uses cookies, so another site
// cannot make the browser act for the user (no CSRF).

const ACCOUNT = 'tally.account';
const ANON = 'tally.anon';

function read(key) {
  try {
    const v = JSON.parse(sessionStorage.getItem(key) || 'null');
    if (v && v.token && v.expires > Date.now() + 5000) return v;
  } catch (_) { /* fall through */ }
  sessionStorage.removeItem(key);
  return null;
}

function keep(key, tok) {
  const v = { token: tok.access_token, expires: Date.now() + tok.expires_in * 1000 };
  sessionStorage.setItem(key, JSON.stringify(v));
  return v;
}

export const tokens = {
  account: () => read(ACCOUNT),
  anonymous: () => read(ANON),
  signedIn: () => read(ACCOUNT) !== null,
  logout() { sessionStorage.removeItem(ACCOUNT); sessionStorage.removeItem('tally.me'); },
  keepAccount: (tok) => keep(ACCOUNT, tok),
  keepAnonymous: (tok) => keep(ANON, tok),
};

// ApiError is an answer in the SPEC's error envelope (or a network failure).
export class ApiError extends Error {
  constructor(status, code, message, field, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field || '';
    this.retryAfter = retryAfter;
  }
}

// request sends one API call. opts: method, body (JSON), token (a token
// object, or null for none; default: the account's), headers.
export async function request(path, opts = {}) {
  const headers = Object.assign({ Accept: 'application/json' }, opts.headers || {});
  const tok = opts.token === undefined ? tokens.account() : opts.token;
  if (tok) headers.Authorization = 'Bearer ' + tok.token;
  let body;
  if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  let res;
  try {
    res = await fetch(path, { method: opts.method || 'GET', headers, body, credentials: 'omit', cache: 'no-store' });
  } catch (_) {
    throw new ApiError(0, 'NETWORK', 'network');
  }
  let data = null;
  const text = await res.text();
  if (text) {
    try { data = JSON.parse(text); } catch (_) { data = null; }
  }
  if (!res.ok) {
    const e = (data && data.error) || {};
    const retry = parseInt(res.headers.get('Retry-After') || '', 10);
    throw new ApiError(res.status, e.code || 'HTTP_' + res.status, e.message || res.statusText, e.field,
      Number.isFinite(retry) ? retry : undefined);
  }
  return { status: res.status, data };
}

// MESSAGES says what each error code means to a person. A unit test holds
// it to cover every code the server sends.
export const MESSAGES = {
  VALIDATION_FAILED: 'Please check the form: ',
  UNAUTHENTICATED: 'Your session has expired or the login is wrong. Please log in again.',
  FORBIDDEN: 'You are not allowed to do that here.',
  NOT_POLL_OWNER: 'Only the poll’s owner can do that.',
  RESULTS_HIDDEN: 'The results are hidden for now.',
  INVITE_REQUIRED: 'This poll needs an invite code to vote without an account.',
  INVITE_INVALID: 'That invite code is not valid for this poll.',
  POW_REQUIRED: 'This poll needs a proof of work from your browser before you vote.',
  POW_INVALID: 'The proof of work was not accepted (it may have expired). Please try again.',
  SUSPICIOUS_ACTIVITY: 'This vote looks automated and was refused.',
  NOT_FOUND: 'Not found.',
  POLL_NOT_FOUND: 'There is no poll at this link.',
  REQUEST_NOT_FOUND: 'That vote request is unknown.',
  METHOD_NOT_ALLOWED: 'That action is not possible.',
  EMAIL_TAKEN: 'An account with this email already exists. Log in instead?',
  USERNAME_TAKEN: 'This username is taken. Please choose another.',
  ALREADY_VOTED: 'You have already voted in this poll.',
  VOTE_CHANGE_LIMIT: 'You have changed your vote as many times as this poll allows.',
  VOTE_CHANGE_CONFLICT: 'Your vote is still being recorded or was just changed elsewhere. Reload and try again.',
  POLL_NOT_ACTIVE: 'This poll is not open for voting: it has closed or has not started yet.',
  OPTIONS_FROZEN: 'The options cannot change once someone has voted.',
  IDEMPOTENCY_CONFLICT: 'This request clashed with an earlier one. Please reload and try again.',
  BODY_TOO_LARGE: 'That is too much text.',
  INVALID_OPTION: 'That option is not part of this poll (it may have changed). Please reload.',
  RATE_LIMITED: 'Too many requests.',
  UNAVAILABLE: 'The service is having trouble reaching its storage.',
  OVERLOADED: 'The server is busy.',
  INTERNAL: 'Something went wrong on our side.',
  NETWORK: 'Cannot reach the server. Check your connection and try again.',
};

// describe turns an error into one sentence for a person.
export function describe(err) {
  if (!(err instanceof ApiError)) return 'Something went wrong: ' + String(err && err.message || err);
  let msg = MESSAGES[err.code] || ('Request failed (' + err.status + ').');
  if (err.code === 'VALIDATION_FAILED') msg += err.message;
  if (['RATE_LIMITED', 'OVERLOADED', 'UNAVAILABLE'].includes(err.code)) {
    msg += err.retryAfter ? ' Please try again in ' + err.retryAfter + ' s.' : ' Please try again shortly.';
  }
  return msg;
}

// retryable reports whether the same request may simply be sent again later.
export function retryable(err) {
  return err instanceof ApiError && ['OVERLOADED', 'UNAVAILABLE', 'NETWORK'].includes(err.code);
}

// me is the signed-in account ({user_id, username, ...}) or null.
export async function me() {
  if (!tokens.signedIn()) return null;
  const cached = sessionStorage.getItem('tally.me');
  if (cached) return JSON.parse(cached);
  const { data } = await request('/v1/users/me');
  sessionStorage.setItem('tally.me', JSON.stringify(data));
  return data;
}

// showError writes err's sentence into a form's [data-error] element.
export function showError(el, err) {
  const box = el.querySelector('[data-error]') || el;
  box.textContent = err ? describe(err) : '';
}

export function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

// The proof-of-work search (see pow.js), off the page's main thread. A
// module worker. Hashes are computed with crypto.subtle in batches, so the
// per-call cost of the promise is spread over many candidates; without
// crypto.subtle (an insecure context) with the plain-JavaScript sha256.
import { sha256 } from './sha256.js';

function leadingZeroBits(buf) {
  const b = buf instanceof Uint8Array ? buf : new Uint8Array(buf);
  let n = 0;
  for (let i = 0; i < b.length; i++) {
    if (b[i] === 0) { n += 8; continue; }
    return n + Math.clz32(b[i]) - 24;
  }
  return n;
}

// forceFallback is for tests: hash with sha256.js even where crypto.subtle exists.
async function search(challenge, difficulty, forceFallback) {
  const subtle = !forceFallback && self.crypto && self.crypto.subtle;
  const enc = new TextEncoder();
  const prefix = challenge + ':';
  const expected = Math.pow(2, difficulty);
  const batch = 512;
  let lastReport = 0;
  for (let start = 0; ; start += batch) {
    const jobs = [];
    for (let i = start; i < start + batch; i++) {
      const input = enc.encode(prefix + i);
      jobs.push(subtle ? subtle.digest('SHA-256', input) : sha256(input));
    }
    const hashes = subtle ? await Promise.all(jobs) : jobs;
    for (let k = 0; k < hashes.length; k++) {
      if (leadingZeroBits(hashes[k]) >= difficulty) return String(start + k);
    }
    // An estimate: the expected number of tries is 2^difficulty.
    const pct = Math.min(99, Math.floor((start + batch) * 100 / (expected * 1.5)));
    if (pct !== lastReport) {
      lastReport = pct;
      self.postMessage({ progress: pct });
    }
  }
}

self.addEventListener('message', (ev) => {
  const { challenge, difficulty, forceFallback } = ev.data;
  search(challenge, difficulty, !!forceFallback).then(
    (solution) => self.postMessage({ solution }),
    (err) => self.postMessage({ error: String(err) }));
});

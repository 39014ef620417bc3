// Proof of work for polls whose anonymous voters must show one: find a
// solution s such that SHA-256("<challenge>:<s>") starts with `difficulty`
// zero bits (pkg/anonaccess). The search runs in a Web Worker so the page
// stays responsive; solutions are decimal counters, as the server's own
// solver uses.

export function solve(challenge, difficulty, onProgress, forceFallback) {
  return new Promise((resolve, reject) => {
    const w = new Worker('/assets/js/pow-worker.js', { type: 'module' });
    w.addEventListener('message', (ev) => {
      const m = ev.data;
      if (m.progress !== undefined) {
        onProgress(m.progress);
      } else if (m.solution !== undefined) {
        w.terminate();
        resolve(m.solution);
      } else if (m.error) {
        w.terminate();
        reject(new Error(m.error));
      }
    });
    w.addEventListener('error', (ev) => {
      w.terminate();
      reject(new Error(ev.message || 'proof of work failed'));
    });
    w.postMessage({ challenge, difficulty, forceFallback: !!forceFallback });
  });
}

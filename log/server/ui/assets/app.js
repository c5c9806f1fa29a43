// app.js: the auditor's page. It reads the log through provlogd's JSON
// read API (/api/v1/…) and tlog-tiles checkpoint (/checkpoint), and
// verifies in this browser what it shows: the checkpoint's signature with
// the log key the user pinned (kept in localStorage), each entry's
// inclusion proof against that checkpoint, each new checkpoint's
// consistency with the last verified one. Entries are decoded here from
// the very bytes whose inclusion is proven (events.js).

import * as v from './verify.js';
import { decodeEntry, buildTimeline, hasSubject } from './events.js';

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 5000;
const FETCH_MS = 10000;
const MAX_RESULTS = 2000; // pages of search results followed at most

// ---- small helpers --------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, val] of Object.entries(attrs)) {
    if (k === 'class') e.className = val;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), val);
    else e.setAttribute(k, val);
  }
  e.append(...children.flat().filter((c) => c !== null && c !== undefined));
  return e;
}

async function get(path, as = 'json') {
  const r = await fetch(path, { signal: AbortSignal.timeout(FETCH_MS), cache: 'no-store' });
  if (!r.ok) throw new Error(`${path}: ${r.status} ${(await r.text()).trim().slice(0, 200)}`);
  return as === 'json' ? r.json() : new Uint8Array(await r.arrayBuffer());
}

const bytes = (b64) => {
  const b = v.b64decodeLenient(b64 ?? '', true);
  if (b === null) throw new Error('the server sent bytes that are not base64');
  return b;
};

function ago(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

const short = (s, n = 12) => (s.length > n ? s.slice(0, n) + '…' : s);

function status(node, kind, text) {
  node.className = kind;
  node.textContent = text;
}

// ---- trust: the pinned keys -----------------------------------------------

const store = {
  get logKey() { return localStorage.getItem('provlog.logKey') ?? ''; },
  set logKey(k) { k ? localStorage.setItem('provlog.logKey', k) : localStorage.removeItem('provlog.logKey'); },
  get witnessKeys() { return localStorage.getItem('provlog.witnessKeys') ?? ''; },
  set witnessKeys(k) { localStorage.setItem('provlog.witnessKeys', k); },
  get chain() { return localStorage.getItem('provlog.chain') ?? ''; },
  set chain(c) { localStorage.setItem('provlog.chain', c); },
  // The last checkpoint verified with the pinned key, {size, root}.
  last(origin) { try { return JSON.parse(localStorage.getItem('provlog.last.' + origin)); } catch { return null; } },
  setLast(origin, cp) { localStorage.setItem('provlog.last.' + origin, JSON.stringify({ size: String(cp.size), root: v.b64encode(cp.root) })); },
};

let logKey = null; // parsed pinned key, or null: trusting only the server
let witnessKeys = [];

async function loadKeys() {
  logKey = null;
  const trust = $('trust-status');
  if (store.logKey) {
    try {
      logKey = await v.parseVerifierKey(store.logKey);
      status(trust, 'ok', `Verifying in this browser against the pinned log key ${logKey.name} (${v.hex(logKey.keyId)}), stored locally.`);
    } catch (e) {
      status(trust, 'bad', `The pinned log key is unusable (${e.message}): trusting only the server.`);
    }
  } else {
    status(trust, 'warn', 'Trusting only the server: no log key is pinned in this browser. Pin the key provlogd printed (DATA/log.pub) to verify here.');
  }
  $('log-key').value = store.logKey;
  $('unpin').hidden = !store.logKey;
  witnessKeys = [];
  for (const line of store.witnessKeys.split('\n').map((l) => l.trim()).filter(Boolean)) {
    try {
      witnessKeys.push(await v.parseVerifierKey(line));
    } catch { /* shown as unverified */ }
  }
  $('witness-keys').value = store.witnessKeys;
}

// ---- the checkpoint -------------------------------------------------------

// current: the newest checkpoint read, {size, root, origin, verified,
// error, cosignatures, raw}.
let current = null;
const seen = []; // [{t (ms), size (BigInt)}] of the last minute, for the rate
let firstSeen = { size: null, t: 0 };

// readCheckpoint fetches and opens the checkpoint: verified with the
// pinned key, or parsed only (verified false) when none is pinned. A
// failed verification returns {error}.
async function readCheckpoint() {
  const raw = await get('/checkpoint', 'bytes');
  if (!logKey) {
    const { text } = v.splitNote(raw);
    return { ...v.parseCheckpoint(text), raw, verified: false, cosignatures: [] };
  }
  try {
    return { ...(await v.verifyCheckpoint(raw, logKey, witnessKeys)), raw, verified: true };
  } catch (e) {
    return { raw, verified: false, error: e.message };
  }
}

// checkConsistency proves cp consistent with the last checkpoint this
// browser verified for the origin, and remembers cp.
async function checkConsistency(cp) {
  const out = $('cp-consistency');
  const last = store.last(cp.origin);
  if (!cp.verified) return status(out, 'warn', 'not checked: no log key pinned');
  if (!last || BigInt(last.size) > cp.size) {
    if (last) return status(out, 'bad', `FAILED: tree size ${cp.size} is smaller than ${last.size}, verified here before`);
    store.setLast(cp.origin, cp);
    return status(out, 'muted', `first checkpoint verified here (size ${cp.size}); later ones are proven to extend it`);
  }
  const from = BigInt(last.size);
  try {
    // Equal sizes need no proof: the roots must be equal.
    const r = from === cp.size ? {} : await get(`/api/v1/proofs/consistency?fromSize=${from}&toSize=${cp.size}`);
    await v.verifyConsistency(from, cp.size, (r.proof ?? []).map(bytes), v.b64decode(last.root), cp.root);
    if (from === cp.size) return status(out, 'ok', `the same tree as verified here before (size ${from})`);
    store.setLast(cp.origin, cp);
    status(out, 'ok', `size ${from} → ${cp.size}: proven consistent here with the checkpoint verified before`);
  } catch (e) {
    status(out, 'bad', `FAILED from size ${from} to ${cp.size}: ${e.message}`);
  }
}

async function refresh() {
  let cp;
  try {
    cp = await readCheckpoint();
  } catch (e) {
    return status($('cp-status'), 'bad', `Cannot read the checkpoint: ${e.message}`);
  }
  const now = Date.now();
  $('refreshed').textContent = `Last refreshed ${new Date(now).toLocaleTimeString()}.`;
  if (cp.error) {
    current = cp;
    status($('cp-status'), 'bad', `Checkpoint verification FAILED: ${cp.error}`);
    return;
  }
  current = cp;
  $('origin').textContent = cp.origin;
  status($('cp-status'), cp.verified ? 'ok' : 'warn', cp.verified
    ? `Signature verified in this browser with the pinned key ${logKey.name}.`
    : 'Signature NOT verified: no log key pinned, trusting the server.');
  $('cp-size').textContent = cp.size.toLocaleString();
  $('cp-root').textContent = v.b64encode(cp.root);
  if (firstSeen.size !== cp.size) firstSeen = { size: cp.size, t: now };
  const cosigned = cp.cosignatures.map((c) => Number(c.time));
  $('cp-age').textContent = cosigned.length > 0
    ? `newest cosignature ${ago(now / 1000 - Math.max(...cosigned))}`
    : `first seen by this page ${ago((now - firstSeen.t) / 1000)} (a checkpoint carries no time of its own)`;
  seen.push({ t: now, size: cp.size });
  while (seen.length > 1 && now - seen[0].t > 60000) seen.shift();
  const span = (now - seen[0].t) / 1000;
  $('cp-rate').textContent = span < 1 ? 'measuring…' : `${(Number(cp.size - seen[0].size) / span).toFixed(2)} entries/s over the last ${Math.round(span)} s`;
  renderWitnesses(cp, now);
  await checkConsistency(cp);
}

function renderWitnesses(cp, now) {
  const body = $('witnesses').querySelector('tbody');
  body.replaceChildren(...cp.cosignatures.map((c) => {
    const age = now / 1000 - Number(c.time);
    const sig = c.verified === true ? el('span', { class: 'ok' }, 'verified') : c.verified === false ? el('span', { class: 'bad' }, 'FAILED') : el('span', { class: 'warn' }, 'not verified (key not pinned)');
    return el('tr', {}, el('th', { scope: 'row' }, `${c.name} `, el('span', { class: 'muted' }, v.hex(c.keyId))),
      el('td', {}, new Date(Number(c.time) * 1000).toISOString().replace('.000Z', 'Z')),
      el('td', { class: age > 3600 ? 'warn' : '' }, ago(age)), el('td', {}, sig));
  }));
  $('witnesses').hidden = cp.cosignatures.length === 0;
  $('witness-none').hidden = cp.cosignatures.length > 0;
}

// ---- proofs of entries ----------------------------------------------------

// proveEntry verifies the inclusion of entry (its bytes) at index in a
// checkpoint (verified with the pinned key if there is one) and returns
// the steps, each {ok: true|false|null, text}, and overall ok.
async function proveEntry(index, entry) {
  const steps = [];
  let cp = current;
  if (!cp || cp.error || cp.size <= index) cp = await readCheckpoint();
  if (cp.error) {
    steps.push({ ok: false, text: `checkpoint signature: FAILED: ${cp.error}` });
    return { ok: false, steps };
  }
  steps.push(cp.verified
    ? { ok: true, text: `checkpoint of size ${cp.size} signed by ${logKey.name}: signature verified in this browser` }
    : { ok: null, text: `checkpoint of size ${cp.size}: signature NOT verified (no log key pinned); trusting the server's root` });
  const leaf = await v.leafHash(entry);
  steps.push({ ok: null, text: `leaf hash SHA-256(0x00 || entry) computed here: ${v.b64encode(leaf)}` });
  try {
    const r = await get(`/api/v1/proofs/inclusion?index=${index}&treeSize=${cp.size}`);
    const proof = (r.proof ?? []).map(bytes);
    await v.verifyInclusion(index, cp.size, leaf, proof, cp.root);
    steps.push({ ok: true, text: `inclusion proof (${proof.length} hashes) recomputes the checkpoint's root: verified in this browser` });
    return { ok: cp.verified, steps };
  } catch (e) {
    steps.push({ ok: false, text: `inclusion proof: FAILED: ${e.message}` });
    return { ok: false, steps };
  }
}

function renderSteps(result) {
  const cls = result.ok === true ? 'ok' : result.steps.some((s) => s.ok === false) ? 'bad' : 'warn';
  const verdict = cls === 'ok' ? 'Verified: this entry is in the log the pinned key signed.'
    : cls === 'bad' ? 'Verification FAILED.' : 'Proof checked against the server’s checkpoint only: pin the log key to verify.';
  return el('div', { class: `verdict ${cls}`, id: 'verdict', 'data-result': cls },
    el('p', {}, el('strong', {}, verdict)),
    el('ol', {}, result.steps.map((s) => el('li', { class: s.ok === true ? 'ok' : s.ok === false ? 'bad' : '' },
      (s.ok === true ? '✓ ' : s.ok === false ? '✗ ' : '• ') + s.text))));
}

// ---- search, timeline, entry ----------------------------------------------

async function search(kind, q) {
  const results = [];
  let token = '';
  do {
    const r = await get(`/api/v1/search?${kind}=${encodeURIComponent(q)}&pageSize=1000${token ? '&pageToken=' + encodeURIComponent(token) : ''}`);
    results.push(...(r.results ?? []));
    token = r.nextPageToken ?? '';
  } while (token && results.length < MAX_RESULTS);
  return { results, more: token !== '' };
}

function decoded(result) {
  const index = BigInt(result.index ?? '0');
  const entry = bytes(result.entry);
  try {
    return { index, entry, ev: decodeEntry(entry) };
  } catch (e) {
    return { index, entry, ev: { type: 'undecodable', error: e.message, subjects: [], signers: [], fields: {} } };
  }
}

const entryLink = (index) => el('a', { href: `#/entry/${index}`, class: 'index' }, `#${index}`);

async function runSearch(kind, q) {
  $('search-kind').value = kind;
  $('search-q').value = q;
  $('results').replaceChildren();
  $('timeline-section').hidden = true;
  $('entry-section').hidden = true;
  const st = $('search-status');
  status(st, 'muted', 'Searching…');
  let found;
  try {
    found = await search(kind, q);
  } catch (e) {
    return status(st, 'bad', `Search failed: ${e.message}`);
  }
  const events = found.results.map(decoded);
  status(st, '', `${events.length} event${events.length === 1 ? '' : 's'}${found.more ? ' (more not shown)' : ''} for ${kind} ${q}.`);
  if (kind === 'digest') return showTimeline(q, events);
  $('results').replaceChildren(...events.map((e) => el('li', {}, entryLink(e.index), ` ${e.ev.type} `,
    e.ev.subjects.map((s) => {
      const d = s.digest.sha256 ? `sha256:${s.digest.sha256}` : '';
      return d ? el('a', { href: `#/search/digest/${d}`, class: 'hash' }, s.name || short(d, 20)) : s.name;
    }))));
}

function eventNode(e) {
  const f = e.ev.fields;
  const facts = [];
  const fact = (k, val) => val && facts.push(el('dt', {}, k), el('dd', {}, val));
  switch (e.ev.type) {
    case 'build':
      fact('builder', f.builderId);
      fact('source', `${f.sourceRepo}@${f.sourceCommit}`);
      fact('build type', f.buildType);
      break;
    case 'sign':
      fact('signature', `${f.algorithm}, key ${f.keyId}`);
      fact('build', f.buildIndex !== undefined ? `#${f.buildIndex}` : '');
      break;
    case 'promote':
      fact('promotion', `${f.from || '(first environment)'} → ${f.to}`);
      fact('approvers', e.ev.signers.length > 0 ? `${e.ev.signers.length}: ${e.ev.signers.map((s) => short(s)).join(', ')}` : '');
      fact('rationale', f.rationale);
      fact('change', f.changeRef);
      break;
    case 'quarantine':
    case 'unquarantine':
      fact('reason', f.reason);
      break;
    case 'undecodable':
      fact('error', e.ev.error);
  }
  fact('time', f.time ? new Date(f.time).toISOString().replace('.000Z', 'Z') : 'not recorded by the event');
  if (e.ev.type !== 'promote') fact('signers', e.ev.signers.map((s) => short(s)).join(', ') || 'none');
  const proof = el('span', { class: 'proof muted', 'data-index': String(e.index) }, 'checking inclusion…');
  return el('li', { class: `node ${e.ev.type}`, 'data-index': String(e.index), 'data-type': e.ev.type },
    el('p', { class: 'node-head' }, el('span', { class: 'badge' }, e.ev.type), ' ', entryLink(e.index), ' ', proof),
    el('dl', { class: 'facts' }, facts));
}

async function showTimeline(digest, events) {
  const mine = events.filter((e) => e.ev.type === 'undecodable' || hasSubject(e.ev, digest));
  const chain = store.chain.split(',').map((s) => s.trim()).filter(Boolean);
  $('chain').value = store.chain;
  $('timeline-subject').textContent = digest;
  const nodes = buildTimeline(mine, chain);
  $('timeline').replaceChildren(...nodes.map((n) => n.kind === 'event' ? eventNode(n)
    : el('li', { class: `node ${n.kind}`, 'data-kind': n.kind }, el('p', { class: 'node-head' }, el('span', { class: 'badge' }, n.kind === 'gap' ? 'gap' : 'not yet'), ' ', n.text))));
  $('timeline-section').hidden = false;
  for (const e of mine) {
    const span = $('timeline').querySelector(`.proof[data-index="${e.index}"]`);
    const r = await proveEntry(e.index, e.entry);
    span.className = `proof ${r.ok === true ? 'ok' : r.steps.some((s) => s.ok === false) ? 'bad' : 'warn'}`;
    span.textContent = r.ok === true ? '✓ inclusion verified' : r.steps.some((s) => s.ok === false) ? '✗ proof FAILED' : 'proof against the server’s root only';
  }
}

async function showEntry(index) {
  $('timeline-section').hidden = true;
  $('results').replaceChildren();
  $('entry-section').hidden = false;
  $('entry-h').textContent = `Entry #${index}`;
  const ver = $('verification');
  ver.replaceChildren(el('p', { class: 'muted' }, 'Verifying…'));
  let entry;
  try {
    const r = await get(`/api/v1/entries?start=${index}&count=1`);
    entry = bytes((r.entries ?? [])[0]);
  } catch (e) {
    return ver.replaceChildren(el('p', { class: 'bad' }, `Cannot read the entry: ${e.message}`));
  }
  const facts = $('entry-facts');
  facts.replaceChildren();
  try {
    const ev = decodeEntry(entry);
    const add = (k, val) => facts.append(el('dt', {}, k), el('dd', {}, val));
    add('event', ev.type);
    add('subjects', ev.subjects.map((s) => `${s.name} ${Object.entries(s.digest).map(([a, h]) => `${a}:${h}`).join(' ')}`).join('; '));
    add('signers (key ids)', ev.signers.join(', ') || 'none');
    $('statement').textContent = JSON.stringify(ev.statement, null, 2);
  } catch (e) {
    $('statement').textContent = `(not an event: ${e.message})`;
  }
  const text = new TextDecoder().decode(entry);
  try {
    $('envelope').textContent = JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    $('envelope').textContent = text;
  }
  $('bundle-link').dataset.index = String(index);
  ver.replaceChildren(renderSteps(await proveEntry(BigInt(index), entry)));
}

async function downloadBundle(ev) {
  ev.preventDefault();
  const index = ev.target.dataset.index;
  try {
    const r = await get(`/api/v1/proof-bundle?index=${index}`);
    const a = el('a', { href: URL.createObjectURL(new Blob([bytes(r.bundle)], { type: 'text/plain' })), download: `entry-${index}.tlog-proof` });
    a.click();
    URL.revokeObjectURL(a.href);
  } catch (e) {
    ev.target.textContent = `Offline proof bundle: ${e.message}`;
  }
}

async function hashFile(file) {
  const st = $('search-status');
  status(st, 'muted', `Hashing ${file.name} here…`);
  const digest = 'sha256:' + v.hex(await v.sha256(new Uint8Array(await file.arrayBuffer())));
  location.hash = `#/search/digest/${digest}`;
}

// ---- routing and wiring ---------------------------------------------------

function route() {
  const [, what, a, b] = location.hash.split('/');
  if (what === 'entry' && /^[0-9]+$/.test(a ?? '')) return showEntry(a);
  if (what === 'search' && a && b) return runSearch(a, decodeURIComponent(b));
  $('timeline-section').hidden = true;
  $('entry-section').hidden = true;
}

async function main() {
  await loadKeys();
  $('pin-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    store.logKey = $('log-key').value.trim();
    await loadKeys();
    await refresh();
    route();
  });
  $('unpin').addEventListener('click', async () => {
    store.logKey = '';
    await loadKeys();
    await refresh();
  });
  $('witness-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    store.witnessKeys = $('witness-keys').value;
    await loadKeys();
    await refresh();
  });
  $('search-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const q = $('search-q').value.trim();
    if (q) location.hash = `#/search/${$('search-kind').value}/${encodeURIComponent(q)}`;
  });
  $('chain-form').addEventListener('submit', (e) => {
    e.preventDefault();
    store.chain = $('chain').value;
    route();
  });
  $('file').addEventListener('change', (e) => e.target.files[0] && hashFile(e.target.files[0]));
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    if (e.dataTransfer.files[0]) hashFile(e.dataTransfer.files[0]);
  });
  $('bundle-link').addEventListener('click', downloadBundle);
  window.addEventListener('hashchange', route);
  await refresh();
  setInterval(() => document.hidden || refresh(), REFRESH_MS);
  await route();
  document.body.dataset.ready = 'true';
}

main();

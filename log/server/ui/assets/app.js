// app.js: the auditor's page. It reads the log through provlogd's JSON
// read API (/api/v1/…) and tlog-tiles checkpoint (/checkpoint), and
// verifies in this browser what it shows: the checkpoint's signature with
// the log key the user pinned (kept in localStorage), each entry's
// inclusion proof against that checkpoint, each new checkpoint's
// consistency with the last verified one. Entries are decoded here from
// the very bytes whose inclusion is proven (events.js). The log's trust
// events (keyrings, revocations, quarantines) are read likewise, each
// proven included: they give signers their names, the environment chain
// and what no longer counts. Signer names prefer the server's reading of
// each entry's signatures (decoded entries' signers, verified by the
// server against the keyring in force), said so where shown.

import * as v from './verify.js';
import { decodeEntry, buildTimeline, hasSubject, trustHistory, keyringAt, envChain, signersOf, effectOf, digestsOf } from './events.js';

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
  e.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined));
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

// search follows the pages of a search, decoded (for the server's reading
// of the signers), up to MAX_RESULTS results.
async function search(kind, q, pageSize = 1000) {
  const results = [];
  let token = '';
  do {
    const r = await get(`/api/v1/search?${kind}=${encodeURIComponent(q)}&decode=true&pageSize=${pageSize}${token ? '&pageToken=' + encodeURIComponent(token) : ''}`);
    results.push(...(r.results ?? []));
    token = r.nextPageToken ?? '';
  } while (token && results.length < MAX_RESULTS);
  return { results, more: token !== '' };
}

// decoded is a search result {index, entry, ev, server}: the entry decoded
// here, and server, the server's reading of its signers (DecodedEntry).
function decoded(result) {
  const index = BigInt(result.index ?? '0');
  const entry = bytes(result.entry);
  const server = serverReading(result.decoded);
  try {
    return { index, entry, ev: decodeEntry(entry), server };
  } catch (e) {
    return { index, entry, ev: { type: 'undecodable', error: e.message, subjects: [], signers: [], fields: {} }, server };
  }
}

const serverReading = (d) => ({
  signers: (d?.signers ?? []).map((s) => ({ keyId: String(s.keyId ?? ''), name: String(s.name ?? '') })),
  logKey: d?.logKey === true,
});

// signerLabel shows a signer (signersOf) by name beside its key id, and
// says in its title whose reading the name is.
function signerLabel(s) {
  if (s.logKey) return el('span', { class: 'signer', title: 'every signature is the log key’s, as the server read it' }, 'the log key');
  const id = s.keyId ? short(s.keyId) : 'no key id';
  const title = s.by === 'log' ? `key ${s.keyId}: the log’s reading of the signature (verified by the server against the keyring in force)`
    : s.name ? `key ${s.keyId}: named by the signature’s key id (a hint) in the keyring in force` : 'a key the keyring in force does not name';
  return el('span', { class: 'signer', title }, s.name ? `${s.name} ` : '', el('span', { class: 'hash muted' }, s.name ? `(${id})` : id));
}

// signerList shows signers by name (in the order of names: an envelope's
// signatures are in canonical order, not the order they were made in).
const signerList = (signers) => signers.length === 0 ? 'none'
  : [...signers].sort((a, b) => a.name.localeCompare(b.name)).flatMap((s, i) => (i > 0 ? [', ', signerLabel(s)] : [signerLabel(s)]));

// ---- the trust history ----------------------------------------------------

// trust: the log's trust events read so far, each {index, entry, ev,
// server, proof}, and history (trustHistory) over those whose inclusion
// did not fail; null until read.
let trust = null;
let trustSize = null; // the checkpoint size trust was read at
const proven = new Map(); // index → proveEntry result verified with the pinned key

// loadTrust reads every trust event of the log (search?trustEvents),
// proves each one's inclusion (once with the pinned key), and renders the
// keyring panel. A failed proof leaves the event out of the history.
let trustLoading = null; // the loadTrust in flight, if any

async function loadTrust() {
  if (trust && current && !current.error && trustSize === current.size) return;
  if (!trustLoading) trustLoading = readTrust().finally(() => { trustLoading = null; });
  await trustLoading;
}

async function readTrust() {
  const st = $('keyring-status');
  let found;
  try {
    found = await search('trustEvents', 'true', 50);
  } catch (e) {
    return status(st, 'bad', `Cannot read the log’s trust events: ${e.message}`);
  }
  const events = found.results.map(decoded);
  for (const e of events) {
    e.proof = proven.get(String(e.index)) ?? await proveEntry(e.index, e.entry);
    if (e.proof.ok === true) proven.set(String(e.index), e.proof);
  }
  const used = events.filter((e) => !e.proof.steps.some((x) => x.ok === false) && e.ev.type !== 'undecodable');
  trust = { events, more: found.more, history: used.length > 0 ? trustHistory(used) : null };
  trustSize = current?.size ?? null;
  renderKeyring();
}

const proofMark = (r) => r.ok === true ? el('span', { class: 'ok' }, '✓ inclusion verified')
  : r.steps.some((x) => x.ok === false) ? el('span', { class: 'bad' }, '✗ proof FAILED: left out') : el('span', { class: 'warn' }, 'proof against the server’s root only');

function renderKeyring() {
  const st = $('keyring-status');
  const box = $('keyring');
  const failed = trust.events.filter((e) => e.proof.steps.some((x) => x.ok === false));
  const kr = keyringAt(trust.history, BigInt(Number.MAX_SAFE_INTEGER));
  if (failed.length > 0) status(st, 'bad', `${failed.length} of ${trust.events.length} trust events FAILED verification and are left out (${failed.map((e) => '#' + e.index).join(', ')}).`);
  else if (!kr) status(st, 'muted', 'The log holds no keyring event (a log admitting any entry).');
  else if (trust.events.every((e) => e.proof.ok === true)) status(st, 'ok', `${trust.events.length} trust events, each proven included in the checkpoint verified here.`);
  else status(st, 'warn', `${trust.events.length} trust events, proven against the server’s checkpoint only (no log key pinned).`);
  if (!kr) return box.replaceChildren();
  const win = (k) => k.notBefore === undefined && k.notAfter === undefined ? 'any entry'
    : `entries ${k.notBefore ?? 0} to ${k.notAfter ?? '∞'}`;
  const rev = trust.history.revocations;
  const keys = el('table', { id: 'keyring-keys' },
    el('thead', {}, el('tr', {}, ['Key', 'Key id', 'Roles', 'May sign', 'Admin'].map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, kr.keys.map((k) => el('tr', { 'data-key': k.keyId },
      el('th', { scope: 'row' }, k.name, rev.has(k.keyId) ? el('span', { class: 'bad' }, ` revoked by #${rev.get(k.keyId).index}`) : null),
      el('td', { class: 'hash', title: k.keyId }, short(k.keyId, 16)),
      el('td', {}, k.roles.join(', ') || '–'), el('td', {}, win(k)), el('td', {}, k.admin ? 'admin' : '')))));
  const envs = el('ul', { id: 'keyring-envs' }, envChain(kr.environments).map((name) => {
    const e = kr.environments.find((x) => x.name === name);
    const rules = [e.from ? `from ${e.from}` : 'first environment', e.approvals ? `${e.approvals} approvals` : '', e.reproducible ? `${e.reproducible} independent builds` : ''].filter(Boolean);
    return el('li', {}, el('strong', {}, name), ` (${rules.join(', ')})`);
  }));
  const admins = kr.admins.length > 0 ? `${kr.adminThreshold} of ${kr.admins.join(', ')} sign keyring changes, revocations and unquarantines.`
    : 'None named: the log key manages the keyring, revocations and unquarantines.';
  const hist = el('ol', { id: 'keyring-history', class: 'history' }, trust.events.map((e) => el('li', { 'data-index': String(e.index), 'data-type': e.ev.type },
    entryLink(e.index), ' ', el('span', { class: 'badge' }, e.ev.type), ' ', historyText(e), ' — by ', signerList(signersOf(e, trust.history)), ' ', proofMark(e.proof))));
  box.replaceChildren(
    el('p', {}, `In force since entry `, entryLink(kr.index), kr.index === trust.history.versions[0].index ? ' (the genesis keyring).' : '.'),
    keys, el('h3', {}, 'Environments'), envs, el('h3', {}, 'Admins'), el('p', { id: 'keyring-admins' }, admins),
    el('h3', {}, 'History'), hist);
  if (trust.more) box.append(el('p', { class: 'warn' }, 'More trust events than shown.'));
}

// historyText says what a trust event did.
function historyText(e) {
  const f = e.ev.fields;
  switch (e.ev.type) {
    case 'keyring':
      return `${f.keys.length} keys, ${f.environments.length} environments, ${f.admins.length > 0 ? `admins ${f.adminThreshold} of ${f.admins.length}` : 'no admins'}`;
    case 'revoke': {
      const k = keyringAt(trust.history, e.index)?.keys.find((x) => x.keyId === f.keyId);
      return `${k ? k.name + ' ' : ''}(${short(f.keyId)}) compromised since #${f.compromisedSince}: ${f.reason}`;
    }
    case 'quarantine':
    case 'unquarantine': {
      const q = trust.history.quarantines.find((x) => x.index === e.index);
      const state = e.ev.type === 'quarantine' ? (q?.lifted !== undefined ? ` (lifted by #${q.lifted})` : ' (in force)') : '';
      return `${digestsOf(e.ev).map((d) => short(d, 20)).join(', ')}: ${f.reason}${state}`;
    }
  }
  return '';
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
  await loadTrust();
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
  const { signers, voided, counts } = e.effect ?? effectOf(e, trust?.history);
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
      fact('approvers', signers.length > 0 ? [`${signers.length}: `, signerList(signers)] : '');
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
  if (e.ev.type !== 'promote') fact('signers', signerList(signers));
  for (const s of voided) {
    const r = s.revocation;
    fact('revoked', `${s.name || short(s.keyId)}: revoked by #${r.index}, compromised since #${r.compromisedSince} (${r.reason}); its signature here no longer counts`);
  }
  const proof = el('span', { class: 'proof muted', 'data-index': String(e.index) }, 'checking inclusion…');
  const by = voided.map((s) => `#${s.revocation.index}`).join(', ');
  return el('li', { class: `node ${e.ev.type}${counts ? '' : ' void'}`, 'data-index': String(e.index), 'data-type': e.ev.type, 'data-counts': String(counts) },
    el('p', { class: 'node-head' }, el('span', { class: 'badge' }, e.ev.type), ' ', entryLink(e.index), ' ', proof),
    counts ? null : el('p', { class: 'bad void-mark' }, `no longer counts: signer revoked by ${by} (${voided.map((s) => s.name || short(s.keyId)).join(', ')})`),
    el('dl', { class: 'facts' }, facts));
}

async function showTimeline(digest, events) {
  const mine = events.filter((e) => e.ev.type === 'undecodable' || hasSubject(e.ev, digest));
  const typed = store.chain.split(',').map((s) => s.trim()).filter(Boolean);
  const kr = keyringAt(trust?.history, BigInt(Number.MAX_SAFE_INTEGER));
  const chain = typed.length > 0 ? typed : kr ? envChain(kr.environments) : [];
  $('chain').value = store.chain;
  $('chain-source').textContent = typed.length > 0 ? 'Chain as typed here.'
    : kr ? `Chain from the keyring in force (entry #${kr.index}): ${chain.join(' → ')}.` : 'Chain as the promotions spell it (the log has no keyring).';
  $('timeline-subject').textContent = digest;
  const nodes = buildTimeline(mine, chain, trust?.history ?? null);
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
  await loadTrust();
  let entry, server;
  try {
    const r = await get(`/api/v1/entries?start=${index}&count=1&decode=true`);
    entry = bytes((r.entries ?? [])[0]);
    server = serverReading((r.decoded ?? [])[0]);
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
    add('signature key ids', ev.signers.map((s) => s || '(none)').join(', ') || 'none');
    add('signers', signerList(signersOf({ index: BigInt(index), ev, server }, trust?.history)));
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
  const reverify = async () => {
    await loadKeys();
    await refresh();
    trust = null;
    proven.clear();
    await loadTrust();
  };
  $('pin-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    store.logKey = $('log-key').value.trim();
    await reverify();
    route();
  });
  $('unpin').addEventListener('click', async () => {
    store.logKey = '';
    await reverify();
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
  await loadTrust();
  setInterval(() => document.hidden || refresh(), REFRESH_MS);
  await route();
  document.body.dataset.ready = 'true';
}

main();

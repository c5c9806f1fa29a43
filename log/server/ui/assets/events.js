// events.js: what the page reads out of a log entry, and an artifact's
// timeline. Pure functions, no DOM, no network. The page decodes every
// entry itself from the bytes whose inclusion it verifies, so what it
// shows is what the log committed to, not a server's description of it.

import { b64decodeLenient } from './verify.js';

// Predicate types (event/predicates.go) and the event type each marks.
export const PREDICATE_TYPES = {
  'https://slsa.dev/provenance/v1': 'build',
  'https://provlog.dev/attestation/sign/v1': 'sign',
  'https://provlog.dev/attestation/promote/v1': 'promote',
  'https://provlog.dev/attestation/sbom/v1': 'sbom',
  'https://in-toto.io/attestation/test-result/v0.1': 'test-result',
  'https://slsa.dev/verification_summary/v1': 'vsa',
  'https://in-toto.io/attestation/link/v0.3': 'link',
  'https://provlog.dev/attestation/keyring/v1': 'keyring',
  'https://provlog.dev/attestation/revoke/v1': 'revoke',
  'https://provlog.dev/attestation/quarantine/v1': 'quarantine',
};

export function eventType(predicateType) {
  if (PREDICATE_TYPES[predicateType]) return PREDICATE_TYPES[predicateType];
  if (/^https:\/\/(spdx\.dev\/Document|cyclonedx\.org\/bom)/.test(predicateType)) return 'sbom';
  return 'unknown';
}

const str = (v) => (typeof v === 'string' ? v : '');

// decodeEntry decodes a stored entry, a DSSE envelope carrying an in-toto
// statement, into {envelope, statement, type, subjects, signers, fields}.
// It throws an Error naming what does not decode. Fields are the few the
// timeline shows; the whole statement is there for the rest.
export function decodeEntry(bytes) {
  let env;
  try {
    env = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    throw new Error(`entry is not a JSON DSSE envelope: ${e.message}`);
  }
  if (typeof env !== 'object' || env === null || typeof env.payload !== 'string') throw new Error('entry is not a DSSE envelope (no payload)');
  const payload = b64decodeLenient(env.payload, true);
  if (payload === null) throw new Error('envelope payload is not base64');
  let st;
  try {
    st = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  } catch (e) {
    throw new Error(`envelope payload is not a JSON statement: ${e.message}`);
  }
  let type = eventType(str(st?.predicateType));
  if (type === 'quarantine' && st?.predicate?.action === 'unquarantine') type = 'unquarantine';
  const subjects = Array.isArray(st?.subject) ? st.subject.map((s) => ({ name: str(s?.name), digest: s?.digest ?? {} })) : [];
  const signers = Array.isArray(env.signatures) ? env.signatures.map((s) => str(s?.keyid)) : [];
  return { envelope: env, statement: st, type, subjects, signers, fields: fieldsOf(type, st?.predicate ?? {}, subjects) };
}

// index is an index of the log as a BigInt, or undefined if v is none.
const index = (v) => (Number.isSafeInteger(v) && v >= 0 ? BigInt(v) : undefined);

function fieldsOf(type, p, subjects) {
  switch (type) {
    case 'build': {
      const src = p.buildDefinition?.externalParameters?.source ?? {};
      const dep = (p.buildDefinition?.resolvedDependencies ?? []).find((d) => d?.digest?.gitCommit) ?? {};
      const meta = p.runDetails?.metadata ?? {};
      return {
        builderId: str(p.runDetails?.builder?.id),
        buildType: str(p.buildDefinition?.buildType),
        sourceRepo: str(src.repository) || str(dep.uri),
        sourceCommit: str(src.commit) || str(dep.digest?.gitCommit),
        invocationId: str(meta.invocationId),
        time: str(meta.finishedOn) || str(meta.startedOn),
      };
    }
    case 'sign':
      return { algorithm: str(p.algorithm), keyId: str(p.keyId), buildIndex: p.buildIndex };
    case 'promote':
      return { from: str(p.from), to: str(p.to), buildIndex: p.buildIndex, decision: str(p.decision), rationale: str(p.rationale), changeRef: str(p.changeRef) };
    case 'quarantine':
    case 'unquarantine':
      return { reason: str(p.reason), quarantineIndex: index(p.quarantineIndex) };
    case 'revoke':
      return { keyId: str(p.keyId), compromisedSince: index(p.compromisedSince), reason: str(p.reason) };
    case 'keyring':
      return keyringOf(p, subjects);
    default:
      return {};
  }
}

// keyringOf reads a keyring predicate (event/trust.go): its keys, each
// with the key id its statement's subject of the same name carries (the
// log admits a keyring only if its subjects are exactly its keys' ids),
// its environments and its admins.
function keyringOf(p, subjects) {
  const admins = Array.isArray(p.admins?.keys) ? p.admins.keys.map(str) : [];
  const keys = (Array.isArray(p.keys) ? p.keys : []).map((k) => ({
    name: str(k?.name),
    keyId: str(subjects.find((s) => s.name === str(k?.name))?.digest?.sha256),
    roles: Array.isArray(k?.roles) ? k.roles.map(str) : [],
    notBefore: index(k?.notBefore),
    notAfter: index(k?.notAfter),
    admin: admins.includes(str(k?.name)),
  }));
  const environments = (Array.isArray(p.environments) ? p.environments : []).map((e) => ({
    name: str(e?.name), from: str(e?.from), approvals: Number.isSafeInteger(e?.approvals) ? e.approvals : 0,
    reproducible: Number.isSafeInteger(e?.reproducible) ? e.reproducible : 0,
  }));
  return { keys, environments, admins, adminThreshold: Number.isSafeInteger(p.admins?.threshold) ? p.admins.threshold : 0 };
}

// hasSubject reports whether ev names the digest "<alg>:<hex>".
export function hasSubject(ev, digest) {
  const [alg, hex] = digest.split(':');
  return ev.subjects.some((s) => s.digest[alg] === hex);
}

const byIndex = (events) => [...events].sort((a, b) => (a.index < b.index ? -1 : a.index > b.index ? 1 : 0));

// TRUST_TYPES are the events that change a log's trust history.
export const TRUST_TYPES = ['keyring', 'revoke', 'quarantine', 'unquarantine'];

// ---- the log's trust history ----------------------------------------------

// trustHistory reads a log's trust events (each {index (BigInt), ev
// (decodeEntry), server?}; as the search for trust events lists them) into
// {versions, revocations, quarantines}, by the rules of the History doc of
// policy/trust.go: a keyring (versions: its fields, index and entry) is in
// force after its own index; a revocation (revocations, by key id: index,
// keyId, compromisedSince, reason) voids its key's signatures on entries
// at or after compromisedSince; a quarantine (quarantines: index, digest,
// reason, lifted: the unquarantine's index) holds until an unquarantine of
// the digest lifts it. It takes the events as the log admitted them: the
// log checked their signatures, the page proves their inclusion.
export function trustHistory(events) {
  const sorted = byIndex(events);
  const versions = [], revocations = new Map(), byDigest = new Map();
  for (const e of sorted) {
    const f = e.ev.fields;
    if (e.ev.type === 'keyring') versions.push({ ...f, index: e.index, entry: e });
    if (e.ev.type === 'revoke' && !revocations.has(f.keyId)) revocations.set(f.keyId, { ...f, index: e.index, entry: e });
    if (e.ev.type === 'quarantine' || e.ev.type === 'unquarantine') {
      for (const d of digestsOf(e.ev)) byDigest.set(d, [...(byDigest.get(d) ?? []), e]);
    }
  }
  const quarantines = [];
  for (const [digest, holds] of byDigest) quarantines.push(...holdsOf(holds).map((q) => ({ ...q, digest })));
  quarantines.sort((a, b) => (a.index < b.index ? -1 : a.index > b.index ? 1 : 0));
  return { versions, revocations, quarantines };
}

// digestsOf lists the "<alg>:<hex>" digests of ev's subjects.
export function digestsOf(ev) {
  return ev.subjects.flatMap((s) => Object.entries(s.digest).map(([alg, hex]) => `${alg}:${hex}`));
}

// holdsOf replays one artifact's quarantine and unquarantine events, in
// log order, into its quarantines {index, reason, lifted}: an
// unquarantine lifts the quarantines before it still held (only the one
// it names, if it names one), as policy.History.Apply does.
export function holdsOf(events) {
  const qs = [];
  for (const e of byIndex(events)) {
    if (e.ev.type === 'quarantine') qs.push({ index: e.index, reason: e.ev.fields.reason, lifted: undefined });
    if (e.ev.type !== 'unquarantine') continue;
    const named = e.ev.fields.quarantineIndex;
    for (const q of qs) if (q.lifted === undefined && q.index < e.index && (named === undefined || named === q.index)) q.lifted = e.index;
  }
  return qs;
}

// keyringAt returns the keyring in force for an entry at index: the last
// version before index, or for an index at or before the first version,
// the first (policy.History.KeyringAt); null if there is none.
export function keyringAt(history, index) {
  let v = null;
  for (const x of history?.versions ?? []) {
    if (x.index >= index && v !== null) break;
    v = x;
  }
  return v;
}

// revokedAt returns the revocation that voids the key's signature on the
// entry at index (compromised since index or earlier), or null.
export function revokedAt(history, keyId, index) {
  const r = history?.revocations.get(keyId);
  return r && r.compromisedSince !== undefined && r.compromisedSince <= index ? r : null;
}

// signersOf names who signed e (an event {index, ev, server?}), each
// {keyId, name, by, roles}: by 'log' for the log's reading of the
// signatures (e.server: the decoded entry's signers, or its log key mark,
// verified by the server), else by 'hint' for the signatures' key ids
// looked up in the keyring in force at e's index (the page's own reading,
// but a key id is only a hint: cosign writes none). roles are the key's
// in that keyring; name is '' for a key id it lacks.
export function signersOf(e, history) {
  if (e.server?.logKey) return [{ keyId: '', name: 'the log key', by: 'log', roles: [], logKey: true }];
  const kr = keyringAt(history, e.index);
  const known = (id) => kr?.keys.find((k) => k.keyId === id && id !== '');
  const one = (keyId, name, by) => ({ keyId, name: name || known(keyId)?.name || '', by, roles: known(keyId)?.roles ?? [] });
  if (e.server?.signers?.length > 0) return e.server.signers.map((s) => one(s.keyId, s.name, 'log'));
  return e.ev.signers.map((id) => one(id, '', 'hint'));
}

// effectOf says whether e still counts in the log's history (policy's
// History.Effective): each signer revoked as compromised since e's index
// or earlier is voided ({...signer, revocation}); an event left with no
// signer, or a promotion left without a promoter or with fewer signers
// than its environment's approvals, no longer counts. Trust events count
// as the log applied them. Returns {signers, voided, counts}.
export function effectOf(e, history) {
  const signers = signersOf(e, history);
  if (!history || TRUST_TYPES.includes(e.ev.type)) return { signers, voided: [], counts: true };
  const voided = signers.map((s) => ({ ...s, revocation: s.keyId ? revokedAt(history, s.keyId, e.index) : null })).filter((s) => s.revocation);
  if (voided.length === 0) return { signers, voided, counts: true };
  const left = signers.filter((s) => !voided.some((x) => x.keyId === s.keyId));
  let counts = left.length > 0;
  if (counts && e.ev.type === 'promote') {
    const env = keyringAt(history, e.index)?.environments.find((x) => x.name === e.ev.fields.to);
    counts = left.some((s) => s.roles.includes('promoter')) && left.length >= (env?.approvals ?? 0);
  }
  return { signers, voided, counts };
}

// envChain spells a keyring's environments as a chain: each after the one
// it is promoted from, first environments (no from) first, in the
// keyring's order. Branches follow one another.
export function envChain(environments) {
  const names = environments.map((e) => e.name);
  const chain = [];
  const visit = (name) => {
    if (chain.includes(name)) return;
    chain.push(name);
    environments.filter((e) => e.from === name).forEach((e) => visit(e.name));
  };
  environments.filter((e) => !e.from || !names.includes(e.from)).forEach((e) => visit(e.name));
  return chain;
}

// ---- an artifact's timeline -----------------------------------------------

// buildTimeline orders an artifact's events (each {index (BigInt), ev
// (decodeEntry), server?}) as build → signatures → promotions along the
// environment chain, and adds a gap node wherever the chain is broken:
//   - no build event, or no signature, or none that still counts;
//   - a promotion from an environment the artifact was never promoted
//     into;
//   - an environment of chain (if given; else the chain the promotions
//     themselves spell) skipped while a later one was reached ("gap"), or
//     not reached yet ("pending"); reached only by promotions that no
//     longer count ("gap");
//   - a quarantine no unquarantine lifted: the artifact may not be
//     promoted (quarantine and unquarantine events come last, in log
//     order).
// An event counts unless a revocation in history (trustHistory; optional)
// voids it (effectOf). Nodes: {kind: 'event', index, ev, server, effect}
// or {kind: 'gap'|'pending', text}.
export function buildTimeline(events, chain = [], history = null) {
  const sorted = byIndex(events).map((e) => ({ ...e, effect: effectOf(e, history) }));
  const of = (t) => sorted.filter((e) => e.ev.type === t);
  const builds = of('build'), signs = of('sign'), promotes = of('promote');
  const holds = sorted.filter((e) => ['quarantine', 'unquarantine'].includes(e.ev.type));
  const others = sorted.filter((e) => !['build', 'sign', 'promote', 'quarantine', 'unquarantine'].includes(e.ev.type));
  const nodes = [];
  const node = (e) => nodes.push({ kind: 'event', index: e.index, ev: e.ev, server: e.server, effect: e.effect });
  const counting = (es) => es.filter((e) => e.effect.counts);
  const step = (es, what) => {
    if (es.length === 0) nodes.push({ kind: 'gap', text: `no ${what} event in the log` });
    es.forEach(node);
    if (es.length > 0 && counting(es).length === 0) nodes.push({ kind: 'gap', text: `no ${what} event that still counts: ${revokedText(es)}` });
  };
  step(builds, 'build');
  step(signs, 'signature');
  others.forEach(node);

  const envs = chain.length > 0 ? chain : inferChain(promotes);
  const reached = new Set();
  const last = Math.max(-1, ...counting(promotes).map((p) => envs.indexOf(p.ev.fields.to)));
  envs.forEach((env, i) => {
    const into = promotes.filter((p) => p.ev.fields.to === env);
    if (into.length === 0) {
      nodes.push(i < last ? { kind: 'gap', text: `no promotion into ${env}` } : { kind: 'pending', text: `not promoted into ${env}` });
    }
    for (const p of into) {
      const from = p.ev.fields.from;
      if (from && !reached.has(from)) nodes.push({ kind: 'gap', text: `promoted into ${env} from ${from} at index ${p.index}, but never promoted into ${from} before` });
      node(p);
    }
    if (into.length > 0 && counting(into).length === 0) nodes.push({ kind: 'gap', text: `no promotion into ${env} that still counts: ${revokedText(into)}` });
    reached.add(env); // a gap here is said once, above
  });
  promotes.filter((p) => !envs.includes(p.ev.fields.to)).forEach(node);
  holds.forEach(node);
  for (const q of holdsOf(holds)) {
    if (q.lifted === undefined) nodes.push({ kind: 'gap', text: `quarantined by #${q.index}: ${q.reason} — may not be promoted` });
  }
  return nodes;
}

// revokedText says why events no longer count: their signers' revocations.
export function revokedText(events) {
  const why = [];
  for (const e of events) {
    for (const s of e.effect.voided) why.push(`#${e.index}'s signer ${s.name || s.keyId.slice(0, 12)} revoked by #${s.revocation.index}`);
  }
  return why.join('; ') || 'signers revoked';
}

// inferChain spells the environment chain the promotions record, each
// environment after the one it was promoted from: from → to edges in
// order of first appearance, sources before targets.
export function inferChain(promotes) {
  const chain = [];
  const add = (env, before) => {
    if (!env || chain.includes(env)) return;
    const i = before ? chain.indexOf(before) : -1;
    if (i >= 0) chain.splice(i, 0, env);
    else chain.push(env);
  };
  for (const p of promotes) {
    const { from, to } = p.ev.fields;
    if (chain.includes(to)) add(from, to);
    else {
      add(from);
      add(to);
    }
  }
  return chain;
}

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
  return { envelope: env, statement: st, type, subjects, signers, fields: fieldsOf(type, st?.predicate ?? {}) };
}

function fieldsOf(type, p) {
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
      return { reason: str(p.reason), quarantineIndex: p.quarantineIndex };
    default:
      return {};
  }
}

// hasSubject reports whether ev names the digest "<alg>:<hex>".
export function hasSubject(ev, digest) {
  const [alg, hex] = digest.split(':');
  return ev.subjects.some((s) => s.digest[alg] === hex);
}

// buildTimeline orders an artifact's events (each {index (BigInt), ev
// (decodeEntry)}) as build → signatures → promotions along the
// environment chain, and adds a gap node wherever the chain is broken:
//   - no build event, or no signature;
//   - a promotion from an environment the artifact was never promoted into;
//   - an environment of chain (if given; else the chain the promotions
//     themselves spell) skipped while a later one was reached ("gap"), or
//     not reached yet ("pending");
//   - a quarantine no later unquarantine lifted (quarantine and
//     unquarantine events come last, in log order).
// Nodes: {kind: 'event', index, ev} or {kind: 'gap'|'pending', text}.
export function buildTimeline(events, chain = []) {
  const sorted = [...events].sort((a, b) => (a.index < b.index ? -1 : a.index > b.index ? 1 : 0));
  const of = (t) => sorted.filter((e) => e.ev.type === t);
  const builds = of('build'), signs = of('sign'), promotes = of('promote');
  const holds = sorted.filter((e) => ['quarantine', 'unquarantine'].includes(e.ev.type));
  const others = sorted.filter((e) => !['build', 'sign', 'promote', 'quarantine', 'unquarantine'].includes(e.ev.type));
  const nodes = [];
  const node = (e) => nodes.push({ kind: 'event', index: e.index, ev: e.ev });
  if (builds.length === 0) nodes.push({ kind: 'gap', text: 'no build event in the log' });
  builds.forEach(node);
  if (signs.length === 0) nodes.push({ kind: 'gap', text: 'no signature event in the log' });
  signs.forEach(node);
  others.forEach(node);

  const envs = chain.length > 0 ? chain : inferChain(promotes);
  const reached = new Set();
  const last = Math.max(-1, ...promotes.map((p) => envs.indexOf(p.ev.fields.to)));
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
    reached.add(env);
  });
  promotes.filter((p) => !envs.includes(p.ev.fields.to)).forEach(node);
  holds.forEach(node);
  const held = holds.at(-1);
  if (held?.ev.type === 'quarantine') nodes.push({ kind: 'gap', text: `quarantined since index ${held.index}: ${held.ev.fields.reason}` });
  return nodes;
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

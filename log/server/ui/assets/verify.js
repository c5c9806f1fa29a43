// verify.js: the page's verification library. Pure functions over bytes,
// no DOM, no network: RFC 6962 Merkle proofs, C2SP signed notes and
// checkpoints, Ed25519 through WebCrypto. It accepts exactly what the Go
// code (internal/checkpoint, transparency-dev/merkle/proof) accepts; the
// integration test TestUIVerifyVectors runs the same vectors through both.
//
// Sizes and indices are BigInt (a tree size is a uint64). Hashes, keys,
// signatures and entries are Uint8Array. Every failure throws a
// VerifyError whose message says what failed.

export class VerifyError extends Error {
  constructor(message) {
    super(message);
    this.name = 'VerifyError';
  }
}

function fail(message) {
  throw new VerifyError(message);
}

// ---- bytes ----------------------------------------------------------------

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

export function b64encode(bytes, alphabet = B64) {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    const k = Math.min(3, bytes.length - i);
    for (let j = 0; j < 4; j++) out += j <= k ? alphabet[(n >> (18 - 6 * j)) & 63] : '=';
  }
  return out;
}

// decodeRaw decodes unpadded base64 in alphabet, ignoring stray trailing
// bits as Go's non-strict decoder does; null if it is not base64.
function decodeRaw(s, alphabet) {
  if (s.length % 4 === 1) return null;
  const out = new Uint8Array(Math.floor((s.length * 3) / 4));
  let acc = 0, bits = 0, o = 0;
  for (const c of s) {
    const v = alphabet.indexOf(c);
    if (v < 0) return null;
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}

// b64decode decodes canonical padded standard base64 (the encoding that
// re-encodes to the same string); it throws otherwise.
export function b64decode(s, what = 'base64') {
  const b = typeof s === 'string' && s.length % 4 === 0 ? decodeRaw(s.replace(/={1,2}$/, ''), B64) : null;
  if (b === null || b64encode(b) !== s) fail(`${what}: not canonical standard base64`);
  return b;
}

// b64decodeLenient decodes standard base64, padded or not, stray trailing
// bits ignored (Go's RawStdEncoding after trimming "="); null if it is not
// base64. DSSE: verifiers "MUST accept either" the standard or the
// URL-safe alphabet, so urlSafe tries that one too.
export function b64decodeLenient(s, urlSafe = false) {
  const t = s.replace(/={1,2}$/, '');
  if (t.includes('=')) return null;
  return decodeRaw(t, B64) ?? (urlSafe ? decodeRaw(t, B64URL) : null);
}

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export function fromHex(s) {
  if (!/^([0-9a-f]{2})*$/.test(s)) fail(`${s.slice(0, 20)}: not lowercase hex`);
  return Uint8Array.from(s.match(/../g) ?? [], (h) => parseInt(h, 16));
}

export function equalBytes(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const utf8 = new TextEncoder();

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
}

// ---- RFC 6962 Merkle trees ------------------------------------------------

// leafHash is RFC 6962 section 2.1: MTH({d(0)}) = SHA-256(0x00 || d(0)).
export function leafHash(entry) {
  return sha256(concat(Uint8Array.of(0), entry));
}

// nodeHash is RFC 6962 section 2.1: SHA-256(0x01 || MTH(left) || MTH(right)).
export function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(1), left, right));
}

function bitLen(n) {
  return n === 0n ? 0 : n.toString(2).length;
}

function onesCount(n) {
  return [...n.toString(2)].filter((c) => c === '1').length;
}

function trailingZeros(n) {
  let z = 0;
  while (((n >> BigInt(z)) & 1n) === 0n) z++;
  return z;
}

// decompInclProof splits an inclusion proof for index in a tree of size
// into its inner part (below where the paths to index and size-1 part)
// and its border part, as transparency-dev/merkle's proof package does.
function decompInclProof(index, size) {
  const inner = bitLen(index ^ (size - 1n));
  return [inner, onesCount(index >> BigInt(inner))];
}

async function chainInner(seed, proof, index) {
  for (let i = 0; i < proof.length; i++) {
    seed = ((index >> BigInt(i)) & 1n) === 0n ? await nodeHash(seed, proof[i]) : await nodeHash(proof[i], seed);
  }
  return seed;
}

async function chainInnerRight(seed, proof, index) {
  for (let i = 0; i < proof.length; i++) {
    if (((index >> BigInt(i)) & 1n) === 1n) seed = await nodeHash(proof[i], seed);
  }
  return seed;
}

async function chainBorderRight(seed, proof) {
  for (const h of proof) seed = await nodeHash(h, seed);
  return seed;
}

function checkRoot(what, got, want) {
  if (!equalBytes(got, want)) fail(`${what}: computed root ${b64encode(got)} is not the checkpoint's ${b64encode(want)}`);
}

// verifyInclusion checks an RFC 6962 inclusion proof (section 2.1.1, the
// audit path) of the leaf at index in the tree of size with root hash root
// (RFC 9162 section 2.1.3.2 gives the same algorithm step by step).
export async function verifyInclusion(index, size, leaf, proof, root) {
  if (index >= size) fail(`inclusion proof: index ${index} is not below tree size ${size}`);
  if (leaf.length !== 32) fail(`inclusion proof: leaf hash of ${leaf.length} bytes, want 32`);
  const [inner, border] = decompInclProof(index, size);
  if (proof.length !== inner + border) fail(`inclusion proof: ${proof.length} hashes, want ${inner + border} for index ${index} in a tree of ${size}`);
  let h = await chainInner(leaf, proof.slice(0, inner), index);
  h = await chainBorderRight(h, proof.slice(inner));
  checkRoot('inclusion proof', h, root);
}

// verifyConsistency checks an RFC 6962 consistency proof (section 2.1.2)
// that the tree of size1 with root1 is a prefix of the tree of size2 with
// root2 (RFC 9162 section 2.1.4.2's algorithm).
export async function verifyConsistency(size1, size2, proof, root1, root2) {
  if (size2 < size1) fail(`consistency proof: size ${size2} is below size ${size1}`);
  if (size1 === size2) {
    if (proof.length > 0) fail('consistency proof: equal sizes, but the proof is not empty');
    checkRoot('consistency proof', root1, root2);
    return;
  }
  if (size1 === 0n) {
    if (proof.length > 0) fail(`consistency proof: from size 0, want an empty proof, got ${proof.length} hashes`);
    return; // any tree extends the empty one
  }
  if (proof.length === 0) fail('consistency proof: empty');
  let [inner, border] = decompInclProof(size1 - 1n, size2);
  const shift = trailingZeros(size1);
  inner -= shift;
  // The proof starts with the root of the subtree of size 2^shift, unless
  // size1 is that very power of two.
  let seed = proof[0], start = 1;
  if (size1 === 1n << BigInt(shift)) [seed, start] = [root1, 0];
  if (proof.length !== start + inner + border) fail(`consistency proof: ${proof.length} hashes, want ${start + inner + border} from ${size1} to ${size2}`);
  const rest = proof.slice(start);
  const mask = (size1 - 1n) >> BigInt(shift);
  let h1 = await chainInnerRight(seed, rest.slice(0, inner), mask);
  h1 = await chainBorderRight(h1, rest.slice(inner));
  checkRoot(`consistency proof (old tree of ${size1})`, h1, root1);
  let h2 = await chainInner(seed, rest.slice(0, inner), mask);
  h2 = await chainBorderRight(h2, rest.slice(inner));
  checkRoot(`consistency proof (new tree of ${size2})`, h2, root2);
}

// ---- C2SP signed notes ----------------------------------------------------

// Caps, as internal/checkpoint's.
export const MAX_NOTE = 96 << 10;
export const MAX_TEXT = 4 << 10;
export const MAX_EXTENSIONS = 16;
export const MAX_SIGNATURES = 100;

// Signature types of C2SP signed-note ("Signature types") and
// tlog-cosignature.
export const SIG_ED25519 = 0x01;
export const SIG_COSIGNATURE_V1 = 0x04;

// checkChars enforces signed-note: "Signed notes MUST be valid UTF-8 and
// MUST NOT contain any ASCII control characters (those below U+0020) other
// than newline." It returns the decoded string.
function checkChars(bytes, what) {
  let s;
  try {
    s = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    fail(`${what}: not valid UTF-8`);
  }
  const bad = s.search(/[\u0000-\u0009\u000b-\u001f]/);
  if (bad >= 0) fail(`${what}: control character U+${s.charCodeAt(bad).toString(16).padStart(4, '0')}`);
  return s;
}

// keyId is signed-note's key ID: the first four bytes of
// SHA-256(key name || 0x0A || signature type || public key).
export async function keyId(name, type, pub) {
  return (await sha256(concat(utf8.encode(name + '\n'), Uint8Array.of(type), pub))).slice(0, 4);
}

// parseVerifierKey parses a signed-note verifier key,
// "<name>+<hex key ID>+<base64(type || public key)>", of type Ed25519
// (0x01) or cosignature/v1 (0x04), and checks its key ID.
export async function parseVerifierKey(vkey) {
  // The key's base64 may hold '+': split at the first two only.
  const m = /^([^+\s]+)\+([^+]*)\+(.*)$/.exec(vkey.trim());
  if (m === null) fail('verifier key: want name+keyid+key');
  const [, name, id, key64] = m;
  const key = b64decodeLenient(key64);
  if (!/^[0-9a-f]{8}$/.test(id) || key === null || key.length !== 33) fail('verifier key: not an Ed25519 key (name+8 hex digits+base64 of 33 bytes)');
  const type = key[0];
  if (type !== SIG_ED25519 && type !== SIG_COSIGNATURE_V1) fail(`verifier key: signature type 0x${type.toString(16)}, want 0x01 or 0x04`);
  const pub = key.slice(1);
  if (hex(await keyId(name, type, pub)) !== id) fail('verifier key: key ID does not match name and key');
  return { name, keyId: fromHex(id), type, pub };
}

// splitNote splits a signed note at its last blank line (signed-note:
// "the text is separated from the signatures by the last empty line in
// the note") into the text, with its final newline, and the signature
// lines "— <name> <base64>", each as {name, b64}.
export function splitNote(bytes) {
  if (bytes.length > MAX_NOTE) fail(`checkpoint: ${bytes.length} bytes, want at most ${MAX_NOTE}`);
  const s = checkChars(bytes, 'checkpoint');
  const i = s.lastIndexOf('\n\n');
  if (i < 0) fail('checkpoint: no blank line before the signatures');
  const text = s.slice(0, i + 1), block = s.slice(i + 2);
  if (block === '' || !block.endsWith('\n')) fail('checkpoint: signature block empty or unterminated');
  const lines = block.slice(0, -1).split('\n');
  if (lines.length > MAX_SIGNATURES) fail(`checkpoint: more than ${MAX_SIGNATURES} signature lines`);
  const sigs = lines.map((l) => {
    if (!l.startsWith('— ')) fail(`checkpoint: signature line ${JSON.stringify(l.slice(0, 40))} does not start with an em dash and a space`);
    const rest = l.slice(2), sp = rest.indexOf(' ');
    return sp < 0 ? { name: rest, b64: '' } : { name: rest.slice(0, sp), b64: rest.slice(sp + 1) };
  });
  return { text, sigs };
}

function parseDecimal(s, what) {
  if (!/^(0|[1-9][0-9]*)$/.test(s) || BigInt(s) >= 1n << 64n) fail(`${what}: ${JSON.stringify(s.slice(0, 40))} is not a canonical decimal uint64`);
  return BigInt(s);
}

// parseCheckpoint parses a C2SP tlog-checkpoint note text strictly:
// origin, tree size (decimal, "with no leading zeroes"), root hash
// (canonical base64 of 32 bytes), then extension lines that "MUST be
// non-empty".
export function parseCheckpoint(text) {
  if (utf8.encode(text).length > MAX_TEXT) fail(`checkpoint text over ${MAX_TEXT} bytes`);
  if (!text.endsWith('\n')) fail('checkpoint text does not end in a newline');
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 3) fail(`checkpoint text has ${lines.length} lines, want at least 3`);
  if (lines.length - 3 > MAX_EXTENSIONS) fail(`checkpoint has more than ${MAX_EXTENSIONS} extension lines`);
  if (lines[0] === '') fail('checkpoint: empty origin');
  const size = parseDecimal(lines[1], 'checkpoint tree size');
  const root = b64decode(lines[2], 'checkpoint root hash');
  if (root.length !== 32) fail('checkpoint root hash: not 32 bytes');
  if (lines.slice(3).includes('')) fail('checkpoint: empty extension line');
  return { origin: lines[0], size, root, extensions: lines.slice(3) };
}

async function ed25519Verify(pub, sig, msg) {
  const key = await crypto.subtle.importKey('raw', pub, { name: 'Ed25519' }, false, ['verify']);
  return crypto.subtle.verify({ name: 'Ed25519' }, key, sig, msg);
}

// lineOf returns the decoded signature of line if it is by key (same name
// and key ID), else null. Signed-note: "Verifiers MUST ignore signatures
// from unknown keys, even if they share a name or ID (but not both) with a
// known key", so a line that names no key ID is not key's either.
function lineOf(line, key) {
  const sig = line.name === key.name ? b64decodeLenient(line.b64) : null;
  return sig !== null && sig.length > 4 && equalBytes(sig.slice(0, 4), key.keyId) ? sig : null;
}

// verifyCheckpoint opens a signed checkpoint (Uint8Array) with the log's
// verifier key (a parsed Ed25519 key whose name must be the origin):
// every line of that key must be canonical base64 and verify, and at least
// one must be there. Other lines are ignored, but those shaped like
// cosignatures (tlog-cosignature: key ID, 8-byte timestamp, 64-byte
// Ed25519 signature) are returned, verified when witnesses (parsed 0x04
// keys) has their key: {name, keyId, time (seconds, BigInt), verified:
// true|false|null}.
export async function verifyCheckpoint(bytes, logKey, witnesses = []) {
  const { text, sigs } = splitNote(bytes);
  const cp = parseCheckpoint(text);
  if (logKey.type !== SIG_ED25519) fail('the pinned log key is not an Ed25519 (0x01) key');
  if (cp.origin !== logKey.name) fail(`checkpoint origin ${JSON.stringify(cp.origin)}, but the pinned key is for ${JSON.stringify(logKey.name)}`);
  const mine = sigs.map((l) => [l, lineOf(l, logKey)]).filter(([, sig]) => sig !== null);
  for (const [line, sig] of mine) {
    if (b64encode(sig) !== line.b64) fail(`checkpoint signature by ${logKey.name}: not canonical base64`);
  }
  if (mine.length === 0) fail(`checkpoint carries no signature by the pinned key ${logKey.name}`);
  // As note.Open: a key's repeated lines are dropped, its first verified.
  const sig = mine[0][1];
  if (sig.length !== 68 || !(await ed25519Verify(logKey.pub, sig.slice(4), utf8.encode(text)))) {
    fail(`checkpoint signature by ${logKey.name} does not verify`);
  }
  const cosigners = await Promise.all(witnesses.map(cosignerKey));
  const cosignatures = [];
  for (const line of sigs) {
    const sig = b64decodeLenient(line.b64);
    if (line.name === logKey.name || sig === null || sig.length !== 76) continue;
    const time = new DataView(sig.buffer, sig.byteOffset + 4, 8).getBigUint64(0);
    const w = cosigners.find((k) => lineOf(line, k) !== null);
    const verified = w ? await verifyCosignature(text, sig, w) : null;
    cosignatures.push({ name: line.name, keyId: sig.slice(0, 4), time, verified });
  }
  return { ...cp, text, cosignatures };
}

// cosignerKey is key as a cosignature/v1 key: a plain Ed25519 (0x01) key
// signs cosignatures under type 0x04, so under another key ID (as
// transparency-dev/formats' NewVerifierForCosignatureV1 reads it).
export async function cosignerKey(key) {
  if (key.type === SIG_COSIGNATURE_V1) return key;
  return { ...key, type: SIG_COSIGNATURE_V1, keyId: await keyId(key.name, SIG_COSIGNATURE_V1, key.pub) };
}

// verifyCosignature checks a tlog-cosignature/v1 Ed25519 cosignature (key
// ID || timestamp || signature) over the checkpoint text: the signed
// message is "cosignature/v1\ntime <timestamp>\n" then the checkpoint.
export async function verifyCosignature(text, sig, key) {
  if (key.type !== SIG_COSIGNATURE_V1 || sig.length !== 76 || !equalBytes(sig.slice(0, 4), key.keyId)) return false;
  const time = new DataView(sig.buffer, sig.byteOffset + 4, 8).getBigUint64(0);
  return ed25519Verify(key.pub, sig.slice(12), utf8.encode(`cosignature/v1\ntime ${time}\n${text}`));
}

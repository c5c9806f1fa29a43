// Package checkpoint owns, for the whole module, the checkpoint format: a
// C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint) inside a C2SP
// signed note (https://c2sp.org/signed-note). The client, the witness and
// the log parse and open checkpoints only through this package, so they
// accept exactly the same checkpoints.
//
// A checkpoint is a signed note whose text is
//
//	<origin>\n
//	<tree size, ASCII decimal, no leading zeroes>\n
//	<root hash, standard base64 of 32 bytes>\n
//	[<extension line>\n ...]
//
// followed by a blank line and one or more signature lines
// "— <key name> <base64(key ID || signature)>\n". For example:
//
//	example.com/behind-the-sofa
//	20852163
//	CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=
//
//	— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=
//
// # Strict
//
// Parsing is strict and canonical, so that a checkpoint that parses
// re-encodes (Checkpoint.Marshal) to exactly the text that was sent, and a
// witness that cosigns the re-encoding signs what it interpreted. Beyond
// what golang.org/x/mod/sumdb/note (note.Open) and
// github.com/transparency-dev/formats/log (Checkpoint.Unmarshal) check,
// this package refuses, each error wrapping ErrMalformed:
//
//  1. a note of more than MaxSize bytes;
//  2. a note text of more than MaxTextSize bytes;
//  3. more than MaxExtensions extension lines;
//  4. an empty extension line (tlog-checkpoint: "Extension lines, if any,
//     MUST be non-empty");
//  5. a tree size that is not canonical decimal ("05", tlog-checkpoint:
//     "with no leading zeroes");
//  6. a root hash that is not exactly 32 bytes in canonical padded base64
//     (the encoding that re-encodes to the same string: no stray trailing
//     bits, which formats/log's decoder ignores);
//  7. a signature by a known key that is not canonical padded base64 (its
//     stray trailing bits note.Open's decoder ignores).
//
// Like note.Open, it also refuses a note that is not valid UTF-8 or has
// ASCII control characters other than newline (signed-note: "Signed notes
// MUST be valid UTF-8 and MUST NOT contain any ASCII control characters"),
// a line of the signature block that is not a signature line at all (not
// "— " first), and more than MaxSignatures signature lines.
//
// Rule 7 settles what the witness (which read a known key's signature in
// any base64 that decodes and re-encoded it) and the client (which refused
// it) once disagreed on, on the strict side: the bytes of a checkpoint
// travel as they are (a client keeps and passes on the note as served, a
// log compares its stored checkpoint byte for byte, evidence is the raw
// note), and a signature whose spare base64 bits can be flipped without
// failing to verify gives one checkpoint many spellings. Refusing them
// means every party that accepts a checkpoint holds the same bytes for
// each verified signature, and a malleable spelling is refused everywhere
// rather than by some parties only. An honest signer (note.Sign) never
// writes one.
//
// # Tolerant
//
// Signed-note: "Verifiers MUST ignore signatures from unknown keys, even
// if they share a name or ID (but not both) with a known key." A signature
// line whose name and key ID are not those of a known key is ignored
// however it is written: another name, base64 that does not decode (it
// names no key ID), too short, another key ID. So a witness or mirror
// appending a line cannot make anyone refuse the log's checkpoint. Here
// this package accepts what note.Open refuses: note.Open rejects the whole
// note when any line, of any key, has an invalid name or base64.
//
// VerifyDetached is the one reader that accepts a known key's signature in
// non-canonical base64: it is for signature lines received apart from any
// checkpoint (a C2SP tlog-witness response), which the caller re-encodes
// canonically (FormatSignatures) before they join a checkpoint, so what it
// publishes still satisfies rule 7.
//
// # Size
//
// MaxSize, 96 KiB, bounds every signed checkpoint the module reads: the
// client's OpenCheckpoint and its tlog-tiles checkpoint fetch, the
// witness's add-checkpoint request and its client's read of a witness's
// response, and the log's stored checkpoint. Signed-note: verifiers "MUST
// accept at least up to 16 signatures. Remember that post-quantum
// signatures can be up to nearly 5kB in size." Sixteen ML-DSA-44 cosignature
// lines (4-byte key ID, 8-byte timestamp and a 2420-byte signature, about
// 3.3 kB in base64 with the key name) take about 53 kB, which leaves room
// for the log's own signature, the text (at most MaxTextSize) and a few
// more lines. Sixteen signatures of the largest size signed-note mentions
// (nearly 5 kB, about 6.2 kB in base64) would not fit; the module verifies no
// signature type that large.
package checkpoint

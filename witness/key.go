package witness

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/provlog/provlog/internal/atomicfile"
)

// The witness key is an Ed25519 C2SP tlog-cosignature key (cosignature/v1,
// signature type 0x04), stored as a note private key
//
//	PRIVATE+KEY+<name>+<key ID, 8 hex digits>+base64(0x04 || 32-byte seed)
//
// whose verifier key is "<name>+<key ID>+base64(0x04 || public key)". The
// key ID is the one formats/note computes for cosignature/v1 keys. A plain
// Ed25519 note key (type 0x01) is accepted too, and cosigns as type 0x04.

// Key is a loaded witness key.
type Key struct {
	// Signer makes cosignature/v1 signatures.
	Signer note.Signer
	// Verifier is the note verifier key (type 0x04) that logs and
	// monitors configure to check the cosignatures.
	Verifier string
}

// GenerateKey returns a new witness key named name: the note private key
// and its verifier key.
func GenerateKey(name string) (skey, vkey string, err error) {
	skey01, vkey01, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return "", "", fmt.Errorf("generating key %q: %w", name, err)
	}
	if vkey, err = fnote.VKeyToCosignatureV1(vkey01); err != nil {
		return "", "", fmt.Errorf("converting verifier key: %w", err)
	}
	signer, err := fnote.NewSignerForCosignatureV1(skey01)
	if err != nil {
		return "", "", fmt.Errorf("generated key: %w", err)
	}
	seed, err := keyMaterial(skey01)
	if err != nil {
		return "", "", err
	}
	skey = fmt.Sprintf("PRIVATE+KEY+%s+%08x+%s", name, signer.KeyHash(), base64.StdEncoding.EncodeToString(append([]byte{0x04}, seed...)))
	return skey, vkey, nil
}

// ParseKey parses a witness note private key (see GenerateKey).
func ParseKey(skey string) (*Key, error) {
	skey = strings.TrimSpace(skey)
	signer, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		return nil, fmt.Errorf("witness key: %w", err)
	}
	seed, err := keyMaterial(skey)
	if err != nil {
		return nil, err
	}
	if len(seed) != ed25519.SeedSize {
		return nil, errors.New("witness key: not an Ed25519 key")
	}
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	vkey01, err := note.NewEd25519VerifierKey(signer.Name(), pub)
	if err != nil {
		return nil, fmt.Errorf("witness key: %w", err)
	}
	vkey, err := fnote.VKeyToCosignatureV1(vkey01)
	if err != nil {
		return nil, fmt.Errorf("witness key: %w", err)
	}
	v, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil || v.KeyHash() != signer.KeyHash() {
		return nil, errors.New("witness key: derived verifier key does not match the signer")
	}
	return &Key{Signer: signer, Verifier: vkey}, nil
}

// keyMaterial returns the key bytes after the type byte of a note private
// key, which must be Ed25519 (type 0x01) or Ed25519 cosignature/v1 (0x04).
func keyMaterial(skey string) ([]byte, error) {
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return nil, errors.New("witness key: not a note private key")
	}
	b, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(b) == 0 || (b[0] != 0x01 && b[0] != 0x04) {
		return nil, errors.New("witness key: not an Ed25519 note private key")
	}
	return b[1:], nil
}

// LoadKey reads a witness key file.
func LoadKey(file string) (*Key, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading witness key: %w", err)
	}
	k, err := ParseKey(string(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return k, nil
}

// CreateKey generates a witness key named name and writes it to keyFile
// (mode 0600), refusing to replace an existing one, and then its verifier
// key to pubFile. Each file is written under a temporary name, synced and
// moved into place (internal/atomicfile): a crash before the private key
// is in place leaves no key, and the next attempt generates one afresh; a
// crash after it leaves the key, from which EnsurePub restores pubFile.
func CreateKey(keyFile, pubFile, name string) (*Key, error) {
	skey, _, err := GenerateKey(name)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Create(keyFile, []byte(skey+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("witness key: %w", err)
	}
	k, err := ParseKey(skey)
	if err != nil {
		return nil, err
	}
	if err := EnsurePub(pubFile, k); err != nil {
		return nil, err
	}
	return k, nil
}

// EnsurePub makes pubFile hold k's verifier key, unless it already does.
func EnsurePub(pubFile string, k *Key) error {
	if err := atomicfile.Ensure(pubFile, []byte(k.Verifier+"\n"), 0o644); err != nil {
		return fmt.Errorf("witness verifier key: %w", err)
	}
	return nil
}

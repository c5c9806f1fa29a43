package event

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/secure-systems-lab/go-securesystemslib/signerverifier"
)

// Key is a submitter's key as DSSE uses it: Ed25519 or ECDSA P-256, loaded
// from PEM (PKIX public keys, PKCS#8 private keys: what cosign and in-toto
// tooling produce). Its key id is the securesystemslib key id.
type Key interface {
	dsse.Verifier
}

// SigningKey is a Key with its private half.
type SigningKey interface {
	dsse.SignerVerifier
}

// ErrKeyType is returned for a key that is neither Ed25519 nor ECDSA P-256.
var ErrKeyType = errors.New("unsupported key type: want Ed25519 or ECDSA P-256")

// LoadKey loads a public (or private) key from PEM.
func LoadKey(pemBytes []byte) (Key, error) { return loadSignerVerifier(pemBytes) }

// LoadSigningKey loads a private key from PEM.
func LoadSigningKey(pemBytes []byte) (SigningKey, error) {
	k, err := loadSignerVerifier(pemBytes)
	if err != nil {
		return nil, err
	}
	if _, err := k.Sign(context.Background(), []byte("probe")); err != nil {
		return nil, fmt.Errorf("not a private key: %w", err)
	}
	return k, nil
}

func loadSignerVerifier(pemBytes []byte) (dsse.SignerVerifier, error) {
	k, err := signerverifier.LoadKey(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("loading PEM key: %w", err)
	}
	switch k.KeyType {
	case signerverifier.ED25519KeyType:
		return signerverifier.NewED25519SignerVerifierFromSSLibKey(k)
	case signerverifier.ECDSAKeyType:
		sv, err := signerverifier.NewECDSASignerVerifierFromSSLibKey(k)
		if err != nil {
			return nil, err
		}
		if pub, ok := sv.Public().(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
			return nil, ErrKeyType
		}
		return sv, nil
	}
	return nil, fmt.Errorf("%w (got %s)", ErrKeyType, k.KeyType)
}

// SignEnvelope signs payload (a statement) with each key and returns the
// canonical envelope.
func SignEnvelope(ctx context.Context, payload []byte, keys ...SigningKey) ([]byte, error) {
	signers := make([]dsse.Signer, len(keys))
	for i, k := range keys {
		signers[i] = k
	}
	s, err := dsse.NewEnvelopeSigner(signers...)
	if err != nil {
		return nil, err
	}
	env, err := s.SignPayload(ctx, PayloadType, payload)
	if err != nil {
		return nil, fmt.Errorf("signing envelope: %w", err)
	}
	return reencode(env)
}

// AddSignatures adds each key's signature to an existing envelope (for
// multi-party approval: each approver signs the same envelope) and returns
// the canonical envelope. A key that already signed (a signature it
// verifies, whatever its key id) is not added twice.
func AddSignatures(ctx context.Context, envelope []byte, keys ...SigningKey) ([]byte, error) {
	env, err := ParseEnvelope(envelope)
	if err != nil {
		return nil, err
	}
	pae := env.PAE()
	for _, k := range keys {
		id, err := k.KeyID()
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(env.Signatures, func(s Signature) bool { return k.Verify(ctx, pae, s.Sig) == nil }) {
			continue
		}
		sig, err := k.Sign(ctx, pae)
		if err != nil {
			return nil, fmt.Errorf("signing envelope: %w", err)
		}
		env.Signatures = append(env.Signatures, Signature{KeyID: id, Sig: sig})
	}
	return reencode(env.DSSE())
}

// WithoutKeyIDs returns the canonical envelope with every signature's key
// id emptied: what cosign's bundle verifier accepts (it skips a signature
// whose key id is not the one it computes itself); verifiers then try
// their keys.
func WithoutKeyIDs(envelope []byte) ([]byte, error) {
	env, err := ParseEnvelope(envelope)
	if err != nil {
		return nil, err
	}
	for i := range env.Signatures {
		env.Signatures[i].KeyID = ""
	}
	return reencode(env.DSSE())
}

// reencode parses a library envelope back through ParseEnvelope, so that
// what is returned is canonical and passes the log's checks.
func reencode(d *dsse.Envelope) ([]byte, error) {
	b, err := jsonMarshal(d)
	if err != nil {
		return nil, err
	}
	env, err := ParseEnvelope(b)
	if err != nil {
		return nil, err
	}
	return env.Canonical(), nil
}

// Key kinds for GenerateKey.
const (
	KeyEd25519   = "ed25519"
	KeyECDSAP256 = "ecdsa-p256"
)

// GenerateKey generates a submitter key of the given kind and returns it
// as PEM: the private key (PKCS#8) and the public key (PKIX).
func GenerateKey(kind string) (privPEM, pubPEM []byte, err error) {
	var priv, pub any
	switch kind {
	case KeyEd25519:
		p, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		priv, pub = k, p
	case KeyECDSAP256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		priv, pub = k, &k.PublicKey
	default:
		return nil, nil, fmt.Errorf("%w (got %q)", ErrKeyType, kind)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, err
	}
	pder, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pder}), nil
}

// LoadKeyRef loads a public key given as PEM text or as a file (relative
// to dir unless absolute), exactly one of the two, and returns it with its
// key id: how keyrings, gate policies and watch files name keys.
func LoadKeyRef(pemText, file, dir string) (Key, string, error) {
	if (pemText == "") == (file == "") {
		return nil, "", errors.New("want exactly one of a PEM key and a key file")
	}
	pemBytes := []byte(pemText)
	if file != "" {
		if !filepath.IsAbs(file) {
			file = filepath.Join(dir, file)
		}
		var err error
		if pemBytes, err = os.ReadFile(file); err != nil {
			return nil, "", err
		}
	}
	k, err := LoadKey(pemBytes)
	if err != nil {
		return nil, "", err
	}
	id, err := k.KeyID()
	if err != nil {
		return nil, "", fmt.Errorf("key id: %w", err)
	}
	return k, id, nil
}

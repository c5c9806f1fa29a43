package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/provlog/provlog/event"
	"github.com/provlog/provlog/internal/atomicfile"
	plog "github.com/provlog/provlog/log"
	"github.com/provlog/provlog/witness"
)

type keygenFlags struct {
	typ, kind, name, out string
}

func newKeygenCmd(g *globals) *cobra.Command {
	var f keygenFlags
	cmd := &cobra.Command{
		Use:   "keygen --type submitter|log|witness --name NAME --out PREFIX",
		Short: "Generate a submitter, log or witness key pair",
		Long: `Generate a key pair and write it to PREFIX.key (mode 0600) and PREFIX.pub.

  submitter  a DSSE signing key for events: PREFIX.key is a PEM PKCS#8
             private key (--kind ed25519 or ecdsa-p256), PREFIX.pub the PEM
             public key a log's keyring names. Prints the key id (the
             securesystemslib key id that envelopes and gate policies use).
  log        a log's checkpoint key: a note private key named --name (the
             log's origin, e.g. example.com/provlog) and its verifier key,
             one line; provlogd --key PREFIX.key uses it.
  witness    a witness cosignature key (C2SP tlog-cosignature,
             cosignature/v1) named --name, and its verifier key, one line.

A log or witness name is a schemeless URL: no scheme, no spaces, no '+'
(example.com/provlog, not https://example.com/provlog).

Existing files are never overwritten.

Exit codes: 0 written; 2 bad flags or the files exist; 3 I/O errors.`,
		Example: `  provlog keygen --type submitter --name ci --out keys/ci
  provlog keygen --type submitter --kind ecdsa-p256 --name alice --out keys/alice
  provlog keygen --type log --name example.com/provlog --out log
  provlog keygen --type witness --name witness.example.com --out witness`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error { return keygen(g, f) }),
	}
	fl := cmd.Flags()
	fl.StringVar(&f.typ, "type", "", "key `type`: submitter, log or witness (required)")
	fl.StringVar(&f.kind, "kind", event.KeyEd25519, "submitter key `kind`: ed25519 or ecdsa-p256")
	fl.StringVar(&f.name, "name", "", "key `name`: the log's origin (log) or the witness's name (witness), a schemeless URL such as example.com/provlog; a label (submitter)")
	fl.StringVar(&f.out, "out", "", "output `prefix`: writes PREFIX.key and PREFIX.pub (required)")
	cmd.MarkFlagRequired("type")
	cmd.MarkFlagRequired("out")
	return cmd
}

// keygenResult is keygen's JSON output.
type keygenResult struct {
	Type        string `json:"type"`
	Name        string `json:"name,omitempty"`
	PrivateKey  string `json:"privateKeyFile"`
	PublicKey   string `json:"publicKeyFile"`
	KeyID       string `json:"keyId,omitempty"`
	VerifierKey string `json:"verifierKey,omitempty"`
}

// checkKeyName checks the --name of a log or witness key, a note key name:
// signed-note names are "non-empty, well-formed UTF-8 containing neither
// Unicode spaces nor plus (U+002B)", and tlog-checkpoint origins and
// tlog-witness names "SHOULD be a schemeless URL". what says what the
// name is, example gives one.
func checkKeyName(name, what, example string) error {
	bad := ""
	switch {
	case name == "":
		bad = "is empty"
	case !utf8.ValidString(name):
		bad = "is not valid UTF-8"
	case strings.IndexFunc(name, unicode.IsSpace) >= 0:
		bad = "has a space"
	case strings.Contains(name, "+"):
		bad = "has a '+'"
	case strings.Contains(name, "://"):
		bad = "has a scheme"
	}
	if bad == "" {
		return nil
	}
	return usageErr("--name %q %s: %s, a schemeless URL such as %s (no scheme, spaces or '+')", name, bad, what, example)
}

func keygen(g *globals, f keygenFlags) error {
	keyFile, pubFile := f.out+".key", f.out+".pub"
	for _, p := range []string{keyFile, pubFile} {
		if _, err := os.Stat(p); err == nil {
			return usageErr("%s already exists; not overwriting it", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	res := keygenResult{Type: f.typ, Name: f.name, PrivateKey: keyFile, PublicKey: pubFile}
	switch f.typ {
	case "submitter":
		if f.kind != event.KeyEd25519 && f.kind != event.KeyECDSAP256 {
			return usageErr("--kind %q: want ed25519 or ecdsa-p256", f.kind)
		}
		priv, pub, err := event.GenerateKey(f.kind)
		if err != nil {
			return err
		}
		k, err := event.LoadKey(pub)
		if err != nil {
			return err
		}
		if res.KeyID, err = k.KeyID(); err != nil {
			return err
		}
		if err := atomicfile.Create(keyFile, priv, 0o600); err != nil {
			return err
		}
		if err := atomicfile.Create(pubFile, pub, 0o644); err != nil {
			return err
		}
	case "log":
		if err := checkKeyName(f.name, "a log key's name is the log's origin", "example.com/provlog"); err != nil {
			return err
		}
		k, err := plog.LoadOrCreateKey(keyFile, pubFile, f.name)
		if err != nil {
			return asUsage(err)
		}
		res.VerifierKey = k.Verifier
	case "witness":
		if err := checkKeyName(f.name, "a witness key's name is the witness's name", "witness.example.com"); err != nil {
			return err
		}
		k, err := witness.CreateKey(keyFile, pubFile, f.name)
		if err != nil {
			return asUsage(err)
		}
		res.VerifierKey = k.Verifier
	default:
		return usageErr("--type %q: want submitter, log or witness", f.typ)
	}
	if f.typ != "submitter" {
		res.Name = f.name
	}
	if g.json {
		return g.printJSON(res)
	}
	fmt.Fprintf(g.stdout, "wrote %s (private, mode 0600) and %s\n", keyFile, pubFile)
	if res.KeyID != "" {
		fmt.Fprintf(g.stdout, "key id: %s\n", res.KeyID)
	}
	if res.VerifierKey != "" {
		fmt.Fprintf(g.stdout, "verifier key: %s\n", res.VerifierKey)
	}
	return nil
}

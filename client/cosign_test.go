package client_test

import (
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// cosigner returns a cosignature/v1 signer for an Ed25519 note key.
func cosigner(skey string) (note.Signer, error) {
	return fnote.NewSignerForCosignatureV1(skey)
}

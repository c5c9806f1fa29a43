package witness

// This file is the add-checkpoint request body, C2SP tlog-witness
// (https://c2sp.org/tlog-witness):
//
//	old <old size, ASCII decimal, no leading zeroes>\n
//	<consistency proof hash, standard base64>\n   (zero to 63 lines)
//	\n
//	<signed checkpoint>
//
// For example:
//
//	old 20852014
//	PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=
//	jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=
//
//	example.com/behind-the-sofa
//	20852163
//	CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=
//
//	— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=
//
// Parsing is strict: the old size is canonical decimal, each proof line is
// the canonical base64 of exactly 32 bytes, at most MaxProofLines proof
// lines, and the whole body is at most MaxRequestSize bytes. The checkpoint
// itself is parsed when the witness opens it (see checkpoint.go).

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strconv"
)

const (
	// MaxProofLines is the most consistency proof lines a request may
	// carry (C2SP tlog-witness: "The client MUST NOT send more than 63").
	MaxProofLines = 63
	// MaxRequestSize caps an add-checkpoint request body: the old size
	// line, 63 proof lines, the blank line and a checkpoint of at most
	// MaxCheckpointSize bytes, the module's checkpoint cap.
	MaxRequestSize = len("old 18446744073709551615\n") + MaxProofLines*45 + 1 + MaxCheckpointSize
)

// AddCheckpointRequest is a parsed add-checkpoint request body.
type AddCheckpointRequest struct {
	// OldSize is the size of the latest checkpoint the client believes the
	// witness cosigned for this log (zero if none).
	OldSize uint64
	// Proof is an RFC 6962 consistency proof from OldSize to the
	// checkpoint's size; empty if OldSize is zero or equal to the size.
	Proof [][]byte
	// Checkpoint is the signed checkpoint note, as sent.
	Checkpoint []byte
}

// Marshal encodes r as an add-checkpoint request body.
func (r AddCheckpointRequest) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString("old ")
	b.WriteString(strconv.FormatUint(r.OldSize, 10))
	b.WriteByte('\n')
	for _, h := range r.Proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.Write(r.Checkpoint)
	return b.Bytes()
}

// ParseAddCheckpointRequest parses an add-checkpoint request body strictly.
// Errors wrap ErrMalformed. The checkpoint is returned unparsed.
func ParseAddCheckpointRequest(body []byte) (*AddCheckpointRequest, error) {
	if len(body) > MaxRequestSize {
		return nil, fmt.Errorf("%w: request body of %d bytes, want at most %d", ErrMalformed, len(body), MaxRequestSize)
	}
	line, rest, ok := bytes.Cut(body, []byte("\n"))
	if !ok {
		return nil, fmt.Errorf("%w: no old size line", ErrMalformed)
	}
	sizeStr, ok := bytes.CutPrefix(line, []byte("old "))
	if !ok {
		return nil, fmt.Errorf("%w: first line %.40q is not \"old <size>\"", ErrMalformed, line)
	}
	old, err := parseDecimal(string(sizeStr))
	if err != nil {
		return nil, fmt.Errorf("%w: old size: %w", ErrMalformed, err)
	}
	r := &AddCheckpointRequest{OldSize: old}
	for {
		line, rest, ok = bytes.Cut(rest, []byte("\n"))
		if !ok {
			return nil, fmt.Errorf("%w: no blank line before the checkpoint", ErrMalformed)
		}
		if len(line) == 0 {
			break
		}
		if len(r.Proof) == MaxProofLines {
			return nil, fmt.Errorf("%w: more than %d consistency proof lines", ErrMalformed, MaxProofLines)
		}
		h, err := parseHash(string(line))
		if err != nil {
			return nil, fmt.Errorf("%w: consistency proof line %d: %w", ErrMalformed, len(r.Proof)+1, err)
		}
		r.Proof = append(r.Proof, h[:])
	}
	if len(rest) == 0 {
		return nil, fmt.Errorf("%w: no checkpoint", ErrMalformed)
	}
	r.Checkpoint = rest
	return r, nil
}

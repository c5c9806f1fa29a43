package event

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	slsa "github.com/in-toto/attestation/go/predicates/provenance/v1"
	intoto "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// This file decodes the in-toto and SLSA protobuf messages from JSON as
// protojson.Unmarshal does, accepting and refusing the same documents, but
// straight from a jsonReader: each message is an object whose members are
// fields by JSON name or proto field name (not both), every field at most
// once, unknown fields skipped (protojson's DiscardUnknown), null for "not
// set"; Struct and Value hold any JSON, numbers within
// float64; Timestamps are RFC 3339; bytes are base64. Errors other than
// the reader's are plain and say what is wrong; callers name the field.

// message reads a message object. field maps a member name to a field
// number (1 to 31; 0 for none) and read decodes a non-null field.
func (r *jsonReader) message(field func(name []byte) int, read func(num int) error) error {
	var seen uint32
	return r.object(func() error { return r.mismatch("want a JSON object") }, func(name []byte) error {
		num := field(name)
		switch {
		case num == 0:
			// in-toto Statement v1 parsing rules: "Consumers MUST ignore
			// unrecognized fields unless otherwise noted"; SLSA v1:
			// "Producers MAY add extension fields to any JSON object".
			return r.skip()
		case seen&(1<<num) != 0:
			return fmt.Errorf("duplicate field %q", clip(string(name)))
		}
		seen |= 1 << num
		if ok, err := r.delim('n'); err != nil || ok {
			return err
		}
		return read(num)
	})
}

// protoString reads a string field.
func (r *jsonReader) protoString() (string, error) {
	if r.peek() != '"' {
		return "", r.mismatch("want a string")
	}
	return r.string()
}

// protoBytes reads a bytes field: base64, standard or URL-safe, padded or
// not.
func (r *jsonReader) protoBytes() ([]byte, error) {
	s, err := r.protoString()
	if err != nil {
		return nil, err
	}
	b, err := base64Encoding([]byte(s)).DecodeString(s)
	if err != nil {
		return nil, errors.New("bytes field: not base64")
	}
	return b, nil
}

// base64Encoding returns the encoding protojson decodes s with: URL-safe
// if s has '-' or '_', else standard; unpadded if its length is not a
// multiple of four.
func base64Encoding(s []byte) *base64.Encoding {
	url, raw := bytes.ContainsAny(s, "-_"), len(s)%4 != 0
	switch {
	case url && raw:
		return base64.RawURLEncoding
	case url:
		return base64.URLEncoding
	case raw:
		return base64.RawStdEncoding
	}
	return base64.StdEncoding
}

// stringMap reads a map<string, string> field, calling put for each entry
// (no two with the same key).
func (r *jsonReader) stringMap(put func(k, v string)) error {
	return r.object(func() error { return r.mismatch("want a JSON object of strings") }, func(name []byte) error {
		v, err := r.protoString()
		if err != nil {
			return err
		}
		put(string(name), v)
		return nil
	})
}

// stringMapOf reads a map<string, string> field into a map.
func (r *jsonReader) stringMapOf() (map[string]string, error) {
	m := map[string]string{}
	return m, r.stringMap(func(k, v string) { m[k] = v })
}

// Timestamp bounds: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
const (
	minTimestamp = -62135596800
	maxTimestamp = 253402300799
)

// timestamp reads a google.protobuf.Timestamp: an RFC 3339 string with at
// most nine fractional digits, within the bounds above.
func (r *jsonReader) timestamp() (*timestamppb.Timestamp, error) {
	s, err := r.protoString()
	if err != nil {
		return nil, err
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil, fmt.Errorf("timestamp %q: not RFC 3339", clip(s))
	}
	secs := t.Unix()
	if secs < minTimestamp || secs > maxTimestamp {
		return nil, fmt.Errorf("timestamp %q: out of range", clip(s))
	}
	// time.Parse takes more fractional digits than a Timestamp has.
	if dot, zone := strings.LastIndexByte(s, '.'), strings.LastIndexAny(s, "Z-+"); dot >= 0 && zone >= dot && zone-dot > len(".999999999") {
		return nil, fmt.Errorf("timestamp %q: more than nine fractional digits", clip(s))
	}
	return &timestamppb.Timestamp{Seconds: secs, Nanos: int32(t.Nanosecond())}, nil
}

// protoStruct reads a google.protobuf.Struct: any JSON object. It builds
// the message only if build is set (else it returns nil).
func (r *jsonReader) protoStruct(build bool) (*structpb.Struct, error) {
	if ok, err := r.delim('{'); err != nil {
		return nil, err
	} else if !ok {
		return nil, r.mismatch("want a JSON object")
	}
	var s *structpb.Struct
	if build {
		s = &structpb.Struct{}
	}
	for {
		if more, err := r.more(); err != nil || !more {
			return s, err
		}
		key, err := r.string()
		if err != nil {
			return nil, err
		}
		v, err := r.protoValue(build)
		if err != nil {
			return nil, err
		}
		if build {
			if s.Fields == nil {
				s.Fields = map[string]*structpb.Value{}
			}
			s.Fields[key] = v // names are unique: no duplicate keys
		}
	}
}

// protoValue reads a google.protobuf.Value: any JSON value, numbers within
// float64. It builds the message only if build is set.
func (r *jsonReader) protoValue(build bool) (*structpb.Value, error) {
	switch r.peek() {
	case '"':
		s, err := r.string()
		if err != nil || !build {
			return nil, err
		}
		return structpb.NewStringValue(s), nil
	case '{':
		s, err := r.protoStruct(build)
		if err != nil || !build {
			return nil, err
		}
		return structpb.NewStructValue(s), nil
	case '[':
		if _, err := r.delim('['); err != nil {
			return nil, err
		}
		var l *structpb.ListValue
		if build {
			l = &structpb.ListValue{}
		}
		for {
			if more, err := r.more(); err != nil {
				return nil, err
			} else if !more {
				break
			}
			v, err := r.protoValue(build)
			if err != nil {
				return nil, err
			}
			if build {
				l.Values = append(l.Values, v)
			}
		}
		if !build {
			return nil, nil
		}
		return structpb.NewListValue(l), nil
	}
	v, err := r.scalar() // malformed JSON is an error here
	if err != nil {
		return nil, err
	}
	var val *structpb.Value
	switch v.Kind() {
	case 'n':
		val = structpb.NewNullValue()
	case 't', 'f':
		val = structpb.NewBoolValue(v.Kind() == 't')
	default: // a number
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			return nil, fmt.Errorf("number %s: out of range", clip(string(v)))
		}
		val = structpb.NewNumberValue(f)
	}
	if !build {
		return nil, nil
	}
	return val, nil
}

// list reads a repeated message field, calling elem for each message.
func (r *jsonReader) list(elem func() error) error {
	if ok, err := r.delim('['); err != nil {
		return err
	} else if !ok {
		return r.mismatch("want an array")
	}
	for {
		if more, err := r.more(); err != nil || !more {
			return err
		}
		if err := elem(); err != nil {
			return err
		}
	}
}

// resourceDescriptors reads a repeated in-toto ResourceDescriptor field.
func (r *jsonReader) resourceDescriptors() ([]*intoto.ResourceDescriptor, error) {
	var rds []*intoto.ResourceDescriptor
	err := r.list(func() error {
		rd := &intoto.ResourceDescriptor{}
		rds = append(rds, rd)
		return r.resourceDescriptor(rd, nil)
	})
	return rds, err
}

// resourceDescriptor reads an in-toto ResourceDescriptor into rd. If
// digest is not nil, it gets the digests (in order) instead of rd, and
// annotations are checked but not kept.
func (r *jsonReader) resourceDescriptor(rd *intoto.ResourceDescriptor, digest func(alg, h string)) error {
	return r.message(resourceDescriptorField, func(num int) (err error) {
		switch num {
		case 1:
			rd.Name, err = r.protoString()
		case 2:
			rd.Uri, err = r.protoString()
		case 3:
			if digest != nil {
				return r.stringMap(digest)
			}
			rd.Digest, err = r.stringMapOf()
		case 4:
			rd.Content, err = r.protoBytes()
		case 5:
			rd.DownloadLocation, err = r.protoString()
		case 6:
			rd.MediaType, err = r.protoString()
		case 7:
			rd.Annotations, err = r.protoStruct(digest == nil)
		}
		return err
	})
}

func resourceDescriptorField(name []byte) int {
	switch string(name) {
	case "name":
		return 1
	case "uri":
		return 2
	case "digest":
		return 3
	case "content":
		return 4
	case "downloadLocation", "download_location":
		return 5
	case "mediaType", "media_type":
		return 6
	case "annotations":
		return 7
	}
	return 0
}

// provenance reads a SLSA Provenance v1 predicate.
func (r *jsonReader) provenance() (*slsa.Provenance, error) {
	p := &slsa.Provenance{}
	err := r.message(func(name []byte) int {
		switch string(name) {
		case "buildDefinition", "build_definition":
			return 1
		case "runDetails", "run_details":
			return 2
		}
		return 0
	}, func(num int) (err error) {
		if num == 1 {
			p.BuildDefinition, err = r.buildDefinition()
		} else {
			p.RunDetails, err = r.runDetails()
		}
		return err
	})
	return p, err
}

func (r *jsonReader) buildDefinition() (*slsa.BuildDefinition, error) {
	bd := &slsa.BuildDefinition{}
	err := r.message(func(name []byte) int {
		switch string(name) {
		case "buildType", "build_type":
			return 1
		case "externalParameters", "external_parameters":
			return 2
		case "internalParameters", "internal_parameters":
			return 3
		case "resolvedDependencies", "resolved_dependencies":
			return 4
		}
		return 0
	}, func(num int) (err error) {
		switch num {
		case 1:
			bd.BuildType, err = r.protoString()
		case 2:
			bd.ExternalParameters, err = r.protoStruct(true)
		case 3:
			bd.InternalParameters, err = r.protoStruct(true)
		case 4:
			bd.ResolvedDependencies, err = r.resourceDescriptors()
		}
		return err
	})
	return bd, err
}

func (r *jsonReader) runDetails() (*slsa.RunDetails, error) {
	rd := &slsa.RunDetails{}
	err := r.message(func(name []byte) int {
		switch string(name) {
		case "builder":
			return 1
		case "metadata":
			return 2
		case "byproducts":
			return 3
		}
		return 0
	}, func(num int) (err error) {
		switch num {
		case 1:
			rd.Builder, err = r.builder()
		case 2:
			rd.Metadata, err = r.buildMetadata()
		case 3:
			rd.Byproducts, err = r.resourceDescriptors()
		}
		return err
	})
	return rd, err
}

func (r *jsonReader) builder() (*slsa.Builder, error) {
	b := &slsa.Builder{}
	err := r.message(func(name []byte) int {
		switch string(name) {
		case "id":
			return 1
		case "version":
			return 2
		case "builderDependencies", "builder_dependencies":
			return 3
		}
		return 0
	}, func(num int) (err error) {
		switch num {
		case 1:
			b.Id, err = r.protoString()
		case 2:
			b.Version, err = r.stringMapOf()
		case 3:
			b.BuilderDependencies, err = r.resourceDescriptors()
		}
		return err
	})
	return b, err
}

func (r *jsonReader) buildMetadata() (*slsa.BuildMetadata, error) {
	m := &slsa.BuildMetadata{}
	err := r.message(func(name []byte) int {
		switch string(name) {
		case "invocationId", "invocation_id":
			return 1
		case "startedOn", "started_on":
			return 2
		case "finishedOn", "finished_on":
			return 3
		}
		return 0
	}, func(num int) (err error) {
		switch num {
		case 1:
			m.InvocationId, err = r.protoString()
		case 2:
			m.StartedOn, err = r.timestamp()
		case 3:
			m.FinishedOn, err = r.timestamp()
		}
		return err
	})
	return m, err
}

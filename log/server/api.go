package server

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
)

// The JSON read API: the read RPCs of provlog.v1.Log in the standard
// proto3 JSON mapping, over the handlers the gRPC server runs (a request
// here is validated, served and refused exactly as the same request over
// gRPC), as grpc-gateway would serve them:
//
//	GET /api/v1/checkpoint                      GetCheckpoint
//	GET /api/v1/entries?start=N&count=M         GetEntries, its stream gathered into one response
//	GET /api/v1/entries/{index}                 GetEntries of that one entry, decoded
//	GET /api/v1/proofs/inclusion?index=N        GetInclusionProof (or leafHash=, and treeSize=)
//	GET /api/v1/proofs/consistency?fromSize=A   GetConsistencyProof (and toSize=)
//	GET /api/v1/search?digest=sha256:…          Search (or builderId=, sourceCommit=, signerKeyId=; pageSize=, pageToken=, decode=)
//	GET /api/v1/proof-bundle?index=N            GetProofBundle (or leafHash=)
//
// Query parameters are the request message's fields, named as in the
// proto (snake_case) or in JSON (lowerCamelCase): integers in decimal,
// bools true or false, bytes in hex (an even number of hex digits) or
// else in standard or URL-safe base64, padded or not. A parameter the request has no field
// for, one given twice, or two members of a oneof is refused.
//
// Responses are the response message in JSON with every field present
// (uint64 as decimal strings, bytes as standard base64). Errors are the
// google.rpc.Status in JSON, {"code": <gRPC code>, "message": "…",
// "details": […]}, under the HTTP status grpc-gateway gives the code
// (httpStatus). Everything here is a read, public as the tiles are; the
// reads that touch the store wait for a read slot as tile reads do.

const (
	// maxAPIQuery caps a request's query string: the largest honest one,
	// a search by a builder id of maxSearchValue bytes escaped, is under it.
	maxAPIQuery = 4 * maxSearchValue
	// maxAPIEntryBytes bounds the entries one /api/v1/entries response
	// gathers: it stops after the GetEntries response that reaches it (so
	// it holds at most this plus chunkBytes plus one entry), and the
	// client continues from start plus the entries it received, as
	// GetEntriesRequest.count documents. Decoded entries count twice, as
	// in the gRPC chunks.
	maxAPIEntryBytes = 4 << 20
	// cacheAPI is every API response's Cache-Control: each answers for
	// the log's state now.
	cacheAPI = "no-cache"
)

// apiJSON is the standard JSON mapping as grpc-gateway writes it: names
// in lowerCamelCase, and fields with their zero value too, so a client
// finds every field.
var apiJSON = protojson.MarshalOptions{EmitUnpopulated: true}

// apiServer serves the JSON read API over the gRPC server's handlers.
type apiServer struct {
	rpc   *grpcServer
	reads readSlots // shared with the tile and bundle reads
}

// apiHandler returns the handler of every path under /api/v1/ (see the
// route list above); an unknown one is NotFound.
func apiHandler(l Log, o options, reads readSlots) http.Handler {
	a := &apiServer{rpc: &grpcServer{log: l, opts: o}, reads: reads}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/checkpoint", unary(a, false, a.rpc.GetCheckpoint))
	mux.HandleFunc("GET /api/v1/entries", a.entries)
	mux.HandleFunc("GET /api/v1/entries/{index}", a.entry)
	mux.HandleFunc("GET /api/v1/proofs/inclusion", unary(a, true, a.rpc.GetInclusionProof))
	mux.HandleFunc("GET /api/v1/proofs/consistency", unary(a, true, a.rpc.GetConsistencyProof))
	mux.HandleFunc("GET /api/v1/search", unary(a, true, a.rpc.Search))
	mux.HandleFunc("GET /api/v1/proof-bundle", unary(a, true, a.rpc.GetProofBundle))
	mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeAPIError(w, status.Errorf(codes.NotFound, "no API route %s", clip(r.URL.Path)))
	})
	return mux
}

// unary serves a unary read RPC: the query decoded into a new request,
// the RPC's handler, its response or error in JSON. A heavy read holds a
// read slot while it is served and marshalled.
func unary[Req any, PReq interface {
	*Req
	proto.Message
}, Resp proto.Message](a *apiServer, heavy bool, rpc func(context.Context, PReq) (Resp, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req := PReq(new(Req))
		if err := requestFromQuery(req, r.URL.RawQuery); err != nil {
			writeAPIError(w, err)
			return
		}
		if heavy && !a.reads.acquire(r.Context()) {
			return // the client went away while waiting
		}
		body, err := marshalAPI(rpc(r.Context(), req))
		if heavy {
			a.reads.release()
		}
		writeAPI(w, body, err)
	}
}

func (a *apiServer) entries(w http.ResponseWriter, r *http.Request) {
	req := &provlogv1.GetEntriesRequest{}
	if err := requestFromQuery(req, r.URL.RawQuery); err != nil {
		writeAPIError(w, err)
		return
	}
	a.serveEntries(w, r, req)
}

// entry serves /api/v1/entries/{index}: the entry at index, decoded.
func (a *apiServer) entry(w http.ResponseWriter, r *http.Request) {
	if r.URL.RawQuery != "" {
		writeAPIError(w, invalid("/api/v1/entries/{index}: takes no query parameters"))
		return
	}
	index, err := strconv.ParseUint(r.PathValue("index"), 10, 64)
	if err != nil {
		writeAPIError(w, invalid("/api/v1/entries/{index}: %q, want a decimal index", clip(r.PathValue("index"))))
		return
	}
	a.serveEntries(w, r, &provlogv1.GetEntriesRequest{Start: index, Count: 1, Decode: true})
}

// serveEntries serves GetEntries, gathering the stream's responses into
// one, up to maxAPIEntryBytes.
func (a *apiServer) serveEntries(w http.ResponseWriter, r *http.Request, req *provlogv1.GetEntriesRequest) {
	if !a.reads.acquire(r.Context()) {
		return
	}
	all := &provlogv1.GetEntriesResponse{}
	n := 0
	err := a.rpc.getEntries(r.Context(), req, func(resp *provlogv1.GetEntriesResponse) error {
		if len(all.Entries) == 0 {
			all.Start = resp.Start
		}
		all.Entries = append(all.Entries, resp.Entries...)
		all.Decoded = append(all.Decoded, resp.Decoded...)
		for _, e := range resp.Entries {
			n += len(e)
			if req.Decode {
				n += len(e)
			}
		}
		if n >= maxAPIEntryBytes {
			return errGathered
		}
		return nil
	})
	if errors.Is(err, errGathered) {
		err = nil
	}
	body, err := marshalAPI(all, err)
	a.reads.release()
	allowLargeWrite(w, r)
	writeAPI(w, body, err)
}

// errGathered ends a GetEntries call once its JSON response is as large
// as it may be.
var errGathered = errors.New("response full")

// requestFromQuery sets the fields of req from a query string (see the
// API's description). Its errors are InvalidArgument, naming the
// parameter or the field.
func requestFromQuery(req proto.Message, rawQuery string) error {
	if len(rawQuery) > maxAPIQuery {
		return invalid("query string: %d bytes, want <= %d", len(rawQuery), maxAPIQuery)
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return invalid("query string: %v", err)
	}
	m := req.ProtoReflect()
	md := m.Descriptor()
	seen := map[protoreflect.FieldNumber]bool{}
	for _, key := range slices.Sorted(maps.Keys(q)) {
		vs := q[key]
		fd := md.Fields().ByJSONName(key)
		if fd == nil {
			fd = md.Fields().ByName(protoreflect.Name(key))
		}
		if fd == nil || fd.IsList() || fd.IsMap() || fd.Message() != nil {
			return invalid("query parameter %q: unknown, want %s", clip(key), paramNames(md))
		}
		name := string(md.Name()) + "." + string(fd.Name())
		if len(vs) > 1 || seen[fd.Number()] {
			return invalid("%s: given more than once", name)
		}
		seen[fd.Number()] = true
		if o := fd.ContainingOneof(); o != nil {
			if set := m.WhichOneof(o); set != nil {
				return invalid("%s.%s: both %s and %s given, want one", md.Name(), o.Name(), set.Name(), fd.Name())
			}
		}
		v, err := parseParam(fd, vs[0])
		if err != nil {
			return invalid("%s: %q, %v", name, clip(vs[0]), err)
		}
		m.Set(fd, v)
	}
	return nil
}

// parseParam parses a query parameter's value as a value of field fd.
func parseParam(fd protoreflect.FieldDescriptor, s string) (protoreflect.Value, error) {
	switch fd.Kind() {
	case protoreflect.Uint64Kind, protoreflect.Uint32Kind:
		bits := 64
		if fd.Kind() == protoreflect.Uint32Kind {
			bits = 32
		}
		u, err := strconv.ParseUint(s, 10, bits)
		if err != nil {
			return protoreflect.Value{}, fmt.Errorf("want a decimal integer from 0 to %d", uint64(1)<<bits-1)
		}
		if bits == 32 {
			return protoreflect.ValueOfUint32(uint32(u)), nil
		}
		return protoreflect.ValueOfUint64(u), nil
	case protoreflect.BoolKind:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return protoreflect.Value{}, errors.New("want true or false")
		}
		return protoreflect.ValueOfBool(b), nil
	case protoreflect.StringKind:
		if !utf8.ValidString(s) {
			return protoreflect.Value{}, errors.New("want UTF-8 text")
		}
		return protoreflect.ValueOfString(s), nil
	case protoreflect.BytesKind:
		b, err := parseBytesParam(s)
		if err != nil {
			return protoreflect.Value{}, err
		}
		return protoreflect.ValueOfBytes(b), nil
	}
	// Read requests hold none of the other kinds.
	return protoreflect.Value{}, fmt.Errorf("a %v field cannot be given as a query parameter", fd.Kind())
}

// parseBytesParam decodes a bytes parameter: hex if it is an even number
// of hex digits (a SHA-256 hash as tools print it), else base64 in either
// alphabet, padded or not. A 32-byte hash is never both: in base64 it is
// 43 characters, or 44 ending in '='.
func parseBytesParam(s string) ([]byte, error) {
	if b, err := hex.DecodeString(s); err == nil {
		return b, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("want hex, or standard or URL-safe base64 (a '+' must be escaped as %2B)")
}

// paramNames lists the query parameters a request message takes.
func paramNames(md protoreflect.MessageDescriptor) string {
	s := ""
	for i := range md.Fields().Len() {
		if i > 0 {
			s += ", "
		}
		s += md.Fields().Get(i).JSONName()
	}
	if s == "" {
		return "none"
	}
	return s
}

// marshalAPI returns an RPC's response in JSON, or its error.
func marshalAPI[Resp proto.Message](resp Resp, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	b, err := apiJSON.Marshal(resp)
	if err != nil {
		slog.Error("marshalling a JSON API response", "err", err)
		return nil, status.Error(codes.Internal, "internal error")
	}
	return b, nil
}

// writeAPI writes a response marshalled by marshalAPI, or its error.
func writeAPI(w http.ResponseWriter, body []byte, err error) {
	if err != nil {
		writeAPIError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", cacheAPI)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

// writeAPIError writes a status error as grpc-gateway does: the
// google.rpc.Status in JSON under httpStatus of its code, with
// Retry-After when retrying may help. An error that is not a status is a
// bug: logged, and reported as Internal without its text.
func writeAPIError(w http.ResponseWriter, err error) {
	st, ok := status.FromError(err)
	if !ok {
		slog.Error("internal error serving a JSON API request", "err", err)
		st = status.New(codes.Internal, "internal error")
	}
	sp := st.Proto()
	sp.Message = strings.ToValidUTF8(sp.Message, "\uFFFD") // it may quote a request
	b, merr := apiJSON.Marshal(sp)
	if merr != nil {
		slog.Error("marshalling a JSON API error", "err", merr)
		b = []byte(`{"code":13,"message":"internal error","details":[]}`)
	}
	code := httpStatus(st.Code())
	if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(b)
}

// httpStatus is the HTTP status of a gRPC code, as grpc-gateway
// (runtime.HTTPStatusFromCode) and google/rpc/code.proto map them.
func httpStatus(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.Canceled:
		return 499 // Client Closed Request
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError // Unknown, Internal, DataLoss
}

// Package provlogv1 holds the generated Go code for the provlog.v1 gRPC API
// defined in log.proto.
package provlogv1

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative log.proto

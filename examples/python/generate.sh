#!/usr/bin/env bash
# Generates the Python code for proto/ into gen/ with Debian's protobuf
# tooling: protoc (protobuf-compiler) and grpc_python_plugin
# (protobuf-compiler-grpc), matching Debian's python3-protobuf and
# python3-grpcio. The generated code is not committed: it is made fresh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
proto="$here/../../proto"
rm -rf "$here/gen" && mkdir -p "$here/gen"
protoc -I "$proto" -I /usr/include \
	--python_out="$here/gen" \
	--grpc_python_out="$here/gen" \
	--plugin=protoc-gen-grpc_python="$(command -v grpc_python_plugin)" \
	"$proto/search/v1/search.proto"

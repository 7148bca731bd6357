"""The gRPC boundary: protobuf in, domain calls, protobuf out."""

"""Runs the DocFoundry gRPC server with settings from the environment (see README)."""

from docfoundry_grpc.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["serve"]))

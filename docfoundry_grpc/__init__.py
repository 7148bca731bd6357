"""DocFoundry: a gRPC documentation search service."""

__version__ = "0.1.0"

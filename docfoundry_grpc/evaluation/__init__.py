"""Retrieval evaluation on BEIR-layout data sets, through the public gRPC API."""

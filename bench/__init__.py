"""The DocFoundry benchmark suite: `python -m bench --help`.

It measures the service as a client sees it (ingest and search throughput and latency
through gRPC, from separate client processes) next to the floors that explain it: the
storage adapter queried in-process on the same database, the embedding model called
in-process, and an embedded peer (LanceDB) on the same texts and vectors.
"""

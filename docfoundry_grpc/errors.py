"""Domain errors. Storage adapters raise these; one interceptor maps them to gRPC status codes."""


class DocFoundryError(Exception):
    """Base class; the message is safe to show to a client."""


class InvalidArgumentError(DocFoundryError):
    """The request cannot be served as given (empty query, bad vector, k out of range…)."""


class NotFoundError(DocFoundryError):
    """A referenced document or chunk does not exist."""


class StoreUnavailableError(DocFoundryError):
    """The database cannot be reached or refused the work; retrying later may succeed."""


class StoreBusyError(DocFoundryError):
    """No database connection became free within the configured wait."""


class SchemaMismatchError(DocFoundryError):
    """The database was created for another embedding dimension or a newer schema."""

"""Domain errors. Storage adapters raise these; one interceptor maps them to gRPC status codes."""


class DocFoundryError(Exception):
    """Base class; the message is safe to show to a client."""


class InvalidArgumentError(DocFoundryError):
    """The request cannot be served as given (empty query, bad vector, k out of range…).

    `field` names the request field at fault (e.g. `document.metadata["tags"]`) where one is,
    so callers get it as a structured field violation, and per-document results name it."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class AlreadyExistsError(DocFoundryError):
    """Something to be created (a collection) exists already."""


class NotFoundError(DocFoundryError):
    """A referenced document or chunk does not exist."""


class StoreUnavailableError(DocFoundryError):
    """The database cannot be reached or refused the work; retrying later may succeed."""


class StoreBusyError(DocFoundryError):
    """No database connection became free within the configured wait."""


class SchemaMismatchError(DocFoundryError):
    """The database was created for another embedding dimension or a newer schema."""

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


class NotEnoughClicksError(DocFoundryError):
    """A learned ranker cannot be trained yet: too few queries have counted clicks."""


class StoreUnavailableError(DocFoundryError):
    """The database cannot be reached or refused the work; retrying later may succeed."""


class StoreBusyError(DocFoundryError):
    """No database connection became free within the configured wait."""


class SchemaMismatchError(DocFoundryError):
    """The database was created for another embedding dimension or a newer schema."""


class StoreLockedError(DocFoundryError):
    """Another process serves this SQLite file: it keeps the index in memory, so a second
    one would not see the first one's writes."""


class OverloadedError(DocFoundryError):
    """The server is at its bound for this kind of work; `retry_after` seconds is when
    trying again is likely to be admitted."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeadlineExceededError(DocFoundryError):
    """The call ran past its deadline (the caller's, or the server's limit for calls
    without one)."""


class UnauthenticatedError(DocFoundryError):
    """The call carries no valid API key."""


class PermissionDeniedError(DocFoundryError):
    """The call's API key does not allow this method or collection."""

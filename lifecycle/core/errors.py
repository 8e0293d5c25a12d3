"""Specific exceptions raised by library code; only the CLI and routes turn them into exit codes
or HTTP statuses."""


class LifecycleError(Exception):
    """Base class: the message is a one-line explanation fit for a user."""


class DataSourceError(LifecycleError):
    """A data source cannot be read or is unfit for training (message names source and cause)."""

    def __init__(self, source: str, cause: str, *, transient: bool = False) -> None:
        self.source = source
        self.cause = cause
        # Transient failures (network, throttling) are worth a retry; a missing file is not.
        self.transient = transient
        super().__init__(f"data source {source!r}: {cause}")


class ModelNotReadyError(LifecycleError):
    """No model can be served (no alias, registry unreachable, load failed)."""


class RegistryError(LifecycleError):
    """A registry operation cannot be carried out (unknown version, no previous alias, ...)."""


class InputValidationError(LifecycleError):
    """Records do not match the model's features; `field` names the offending one."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class UnseenCategoryError(InputValidationError):
    """A categorical feature holds a value the model never saw in training
    (MLOPS_UNSEEN_CATEGORY=reject); `value` is that value."""

    def __init__(self, field: str, message: str, value: str) -> None:
        self.value = value
        super().__init__(field, message)


class SharedServerError(LifecycleError):
    """The MongoDB-wire server already holds another Lifecycle database and cannot keep two apart
    (nx-27017, `mlops mongo`: one namespace per server)."""

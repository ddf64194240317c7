"""The exceptions of the package: one class per status of the library, all
under rre.Error, each carrying the status name and the library's detail
message."""


class Error(Exception):
    """A failure reported by librre. `status` is the status name
    ("RRE_EJSON"), `detail` the library's message saying what and where."""

    status = "RRE_EINTERNAL"

    def __init__(self, status, detail, what=None):
        self.status = status
        self.detail = detail or ""
        text = "%s: %s" % (what, self.detail) if what else self.detail
        super().__init__("%s (%s)" % (text or status, status))


class InvalidArgumentError(Error, ValueError):
    pass


class OutOfMemoryError(Error, MemoryError):
    pass


class UnknownTypeError(Error, ValueError):
    pass


class JSONError(Error, ValueError):
    pass


class NotObjectError(Error, TypeError):
    pass


class LimitError(Error, ValueError):
    pass


class InvalidPayloadError(Error, ValueError):
    """Strict validation refused a payload; `problems` lists why."""

    problems = ()


class ConfigKeyError(Error, ValueError):
    pass


class IOError_(Error, OSError):
    pass


class DatabaseError(Error):
    pass


class CorruptError(DatabaseError):
    pass


class FullError(DatabaseError):
    pass


class ReadOnlyError(DatabaseError):
    pass


class ClosedError(Error):
    pass


class HeldError(Error):
    pass


class TimeoutError_(Error, TimeoutError):
    pass


class NotFoundError(Error, LookupError):
    pass


class CryptoError(Error):
    pass


class NATSError(Error):
    pass


class InternalError(Error):
    pass


class DuplicateError(Error):
    pass


class CategoryError(Error, ValueError):
    pass


class RetryLater(Error):
    """Raised by a durable subscriber's handler: deliver this event again
    after the retry delay, without counting a failure."""

    status = "RRE_ERETRY_LATER"

    def __init__(self, detail="", what=None):
        super().__init__("RRE_ERETRY_LATER", detail, what)


class Rejected(Error):
    """Raised by a durable subscriber's handler: this event can never be
    handled; it goes to the dead letters at once."""

    status = "RRE_EREJECTED"

    def __init__(self, detail="", what=None):
        super().__init__("RRE_EREJECTED", detail, what)


_BY_STATUS = {
    1: InvalidArgumentError,
    2: OutOfMemoryError,
    3: UnknownTypeError,
    4: JSONError,
    5: NotObjectError,
    6: LimitError,
    7: InvalidPayloadError,
    8: ConfigKeyError,
    9: IOError_,
    10: DatabaseError,
    11: CorruptError,
    12: FullError,
    13: ReadOnlyError,
    14: ClosedError,
    15: HeldError,
    16: TimeoutError_,
    17: NotFoundError,
    18: CryptoError,
    19: NATSError,
    20: InternalError,
    21: DuplicateError,
    22: CategoryError,
}


def from_status(code, detail, what=None):
    from ._lib import dec, lib

    if code == 23:
        return RetryLater(detail, what)
    if code == 24:
        return Rejected(detail, what)
    cls = _BY_STATUS.get(code, Error)
    return cls(dec(lib.rre_status_name(code)), detail, what)

"""Errors raised by HAL drivers, split by what the caller can do about them."""


class HalError(Exception):
    """Base class for every error raised by a HAL driver."""


class HalTransientError(HalError):
    """A read or write failed but may succeed if retried (timeout, CRC error, busy bus)."""


class HalFault(HalError):
    """The hardware is in a state that requires a safety stop."""


class MeterError(HalTransientError):
    """The energy meter could not be read, or returned a value that fails sanity checks."""

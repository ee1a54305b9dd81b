"""Hardware abstraction layer: drivers and simulators behind small Protocols.

This package never imports :mod:`evsed`; bench and production-test scripts use it alone.
Third-party libraries are imported only inside the driver modules, so :mod:`hal.types`,
:mod:`hal.interfaces` and :mod:`hal.sim` import anywhere.
"""

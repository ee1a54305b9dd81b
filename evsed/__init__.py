"""evsed: charge-controller daemon for embedded-Linux EV chargers."""

__version__ = "0.1.0"

"""Charging logic: pure state machines. No I/O; time arrives with each event."""

"""Simulators that sit on the far side of the real transports (pty, TCP, mock GPIO pins)."""

"""OCPP-J client: transport, durable delivery, and one folder per protocol version."""

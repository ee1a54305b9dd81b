"""Durable state: SQLite on the data partition."""

"""The message spine: broker factory, consume pipeline, publishing with correlation, outbox."""

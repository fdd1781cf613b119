"""The runtime spine every service runs on: composition, messaging, settings, logging, observability, Postgres, Redis, migrations."""

"""Shared building blocks of the signgate services: settings, messaging, storage and the embedded stack."""

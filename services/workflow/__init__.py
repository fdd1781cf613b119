"""The workflow service: packages, recipients in workflow order, and their authentication settings."""

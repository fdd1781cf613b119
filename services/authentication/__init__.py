"""The authentication service: recipients prove who they are before opening a document."""

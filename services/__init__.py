"""The four signgate services, each a FastStream app with its own composition root."""

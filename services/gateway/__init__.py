"""The HTTP edge: the seed vendors' APIs over HTTP, each request turned into its command."""

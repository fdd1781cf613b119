"""The gateway: the seed APIs (SigningHub, BoldSign, AssureSign) over HTTP, as a caller of the services."""

"""The development stack: embedded servers, containers, the runner of `make run`, development secrets. No service imports it."""

"""Tools beside the runtime: the CLI, the benchmark, the demo, the docs generator, provisioning. They may read the service registry."""

"""``python -m libs.tools.bench``: signgate's throughput and latency, against the same machine's ceiling.

- `loadgen`: the load generator, run as its own process (open loop at a fixed rate, or flat out);
- `paths`: the gateway's comparison: one OTP verification over HTTP or over Kafka, open loop;
- `ceiling`: a bare aiokafka echo (consume, one Redis round trip, publish a reply);
- `scenarios`: the embedded stack, the services as processes, the prepared data and each run;
- `stats` and `report`: percentiles, rates, ratios, the printed table and its JSON.

A benchmark, not a test: nothing here fails on a timing.
"""

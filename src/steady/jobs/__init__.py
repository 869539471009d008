"""Jobs: the durable queue, the typed messages between supervisor and worker, the supervisor."""

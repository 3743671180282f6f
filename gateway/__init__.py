"""Edge concerns: the WebSocket price gateway and HTTP edge (trace context, error format, metrics)."""

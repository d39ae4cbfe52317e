"""The MessageBus contract: wire protocol v1, the engine-status WebSocket protocol,
and both Redis sides of it (requester, responder). Real engines embed this package;
it imports nothing else of nautilus-probe."""

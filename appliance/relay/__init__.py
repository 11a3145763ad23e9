"""The relay: the plugin's outbound tunnel, streams multiplexed over it, and forwarding to it (docs/relay.md)."""

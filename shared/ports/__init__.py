"""Ports: the interfaces the core talks to. Adapters live in shared/adapters/{local,azure}."""

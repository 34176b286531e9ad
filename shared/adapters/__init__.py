"""Adapters: the ports (shared/ports/) implemented on Azure services and on one machine."""

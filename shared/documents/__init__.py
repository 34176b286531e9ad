"""The stored documents as typed models, and the typed way through the store port (base.py).

resources.py  the "resources" container: one model per kind (job, cluster, file server, ...)
nodes.py      nodes, heartbeats, leases, subscription role assignments
messages.py   the bodies of lane entries and cluster work signals
"""

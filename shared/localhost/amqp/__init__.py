"""Service Bus's AMQP 1.0 dialect, served by the product: the local host's door (door.py) to its
queues, and the server that the tests' Service Bus broker is built on (server.py, namespace.py)."""

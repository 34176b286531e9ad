"""A test AMQP 1.0 broker speaking Azure Service Bus's dialect (tests only, not part of the product).

`Broker` serves one in-memory namespace (store.py) on one port: AMQP for the data plane, through
the product's server (shared/localhost/amqp, which the local host's door runs too), and the
ATOM management API over HTTP (atom.py); `Broker.connection_string` is what clients use. Run it in-process (`with Broker() as b`)
or as a process: `python -m tests.servicebus_broker --port N`.
"""

from .broker import Broker

__all__ = ["Broker"]

"""A test AMQP 1.0 broker speaking Azure Service Bus's dialect (tests only, not part of the product).

`Broker` serves one namespace on one port: AMQP for the data plane and the ATOM management API
over HTTP; `Broker.connection_string` is what clients use. Run it in-process (`with Broker() as b`)
or as a process: `python -m tests.servicebus_broker --port N`.
"""

from .broker import Broker

__all__ = ["Broker"]

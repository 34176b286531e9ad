"""The local host: runs the project's FunctionApp on one machine (HTTP routes, queue triggers,
timers) with the embedded adapters. The product's embedded default, not a test fake."""

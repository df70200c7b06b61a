"""Loopback fakes of external services (the model APIs): real HTTP on 127.0.0.1."""

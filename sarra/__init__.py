"""sarra: a file-tree replication and notification switch (v02 AMQP posts and logs)."""

__version__ = "0.1.0"

"""swarmlens: usage history and reporting for multi-agent OpenAI Swarm apps (service side and CLI)."""

__version__ = "0.1.0"

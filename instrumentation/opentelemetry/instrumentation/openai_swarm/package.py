"""What this instrumentation instruments.

PyPI publishes OpenAI Swarm as ``openai-swarm``; installing it from GitHub
(``pip install git+https://github.com/openai/swarm``) gives a distribution named ``swarm``.
Both provide the same ``swarm`` module, and both are accepted.
"""

_instruments = ("openai-swarm >= 0.1.1",)
_instruments_github = ("swarm >= 0.1.0",)

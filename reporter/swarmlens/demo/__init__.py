"""Demo traffic: real Swarm agents of a SaaS support desk, instrumented with the zero-config
import, answering through the scripted LLM and sending their spans over OTLP like any app.

- ``agents.py``: the agents (Triage plus Billing, Tech Support, Account and Sales), their tools
  and handoffs;
- ``scenarios.py``: what the customers ask and what the scripted LLM answers, with the token
  usage of every reply (so every task's totals are known in advance), and the task plan;
- ``backfill.py``: the demo-only time shift that spreads tasks over past days;
- ``runner.py``: the planned tasks run through Swarm, with counts of what happened;
- ``agents_sdk_app.py``: the same support desk on the OpenAI Agents SDK;
- ``seed.py``: the demo's prices and plans, and the showcase written on an empty database.

The commands are ``swarmlens demo`` and ``swarmlens demo-agents`` (``swarmlens.commands.demo``,
``swarmlens.commands.demo_agents``; ``swarmlens up --demo`` runs both with ``--forever``). They need
the ``demo`` extra: ``pip install 'swarmlens[demo]'``.
"""

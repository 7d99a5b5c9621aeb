"""Demo traffic: real Swarm agents of a SaaS support desk, instrumented with the zero-config
import, answering through the scripted LLM and sending their spans over OTLP like any app.

- ``agents.py``: the agents (Triage plus Billing, Tech Support, Account and Sales), their tools
  and handoffs;
- ``scenarios.py``: what the customers ask and what the scripted LLM answers, with the token
  usage of every reply (so every task's totals are known in advance), and the task plan;
- ``backfill.py``: the demo-only time shift that spreads tasks over past days;
- ``command.py``: ``swarmlens demo`` (and ``swarmlens up --demo``, which runs it with
  ``--forever``).
"""

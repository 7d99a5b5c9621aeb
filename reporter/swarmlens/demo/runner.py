"""The demo's task runner: planned tasks through Swarm, with thread-safe counts of what happened."""

from __future__ import annotations

import threading


class DemoRunner:
    """Runs planned tasks through Swarm; thread-safe counts of what happened."""

    def __init__(self, swarm, agents, stop: threading.Event):
        self.swarm = swarm
        self.agents = agents
        self.stop = stop
        self.lock = threading.Lock()
        self.counts = {"ok": 0, "failed": 0, "unexpected": 0, "streamed": 0, "skipped": 0}
        self.first_unexpected = ""

    def run_task(self, task) -> str:
        from swarmlens.demo.backfill import OFFSET_NS

        if self.stop.is_set():
            outcome = "skipped"
        else:
            token = OFFSET_NS.set(int(task.offset_seconds * 1e9))
            try:
                # The ticket number makes each conversation's opening unique: the scripted LLM tells
                # concurrent tasks apart by it, and two customers asking the same thing at once
                # would otherwise share one count of replies.
                response = self.swarm.run(
                    agent=self.agents[task.start_agent],
                    messages=[{"role": "user", "content": f"Ticket {task.index + 1001}: {task.message}"}],
                    context_variables={"user_id": task.user_id, "session_id": task.session_id},
                    stream=task.stream, max_turns=20)
                if task.stream:
                    for _ in response:
                        pass
                outcome = "ok" if not task.scenario.failing else "unexpected"
                detail = f"{task.scenario.name} did not fail as scripted"
            except Exception as exc:  # failures are part of the demo; unexpected ones are reported
                expected = task.scenario.failing and type(exc).__name__ == task.scenario.failing
                outcome = "failed" if expected else "unexpected"
                detail = f"{task.scenario.name}: {type(exc).__name__}: {exc}"
            finally:
                OFFSET_NS.reset(token)
            if outcome == "unexpected" and not self.first_unexpected:
                self.first_unexpected = detail
        task.outcome = outcome
        with self.lock:
            self.counts[outcome] += 1
            if task.stream and outcome != "skipped":
                self.counts["streamed"] += 1
        return outcome

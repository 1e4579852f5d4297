"""One workload's audit with its numbers settled.

``run`` drives the agent loop for one workload; ``confirm`` re-measures the winning
patch under the harness's control; ``fallback`` retries part of a patch that does not
train; ``attribution`` splits a speedup between its changes; ``calibrate`` measures the
noise floor; ``stats``, ``timebudget`` and ``cache`` serve them.
"""

"""The proactive pipeline: one module per step, each working set-wise on a batch of cases.

intake -> triggers -> gather -> verify -> assign (or consent) -> account -> pay -> notify,
with stop for the end of rights, dispatch for the outbox, payroll for monthly payments and
worker for claiming and writing batches.
"""

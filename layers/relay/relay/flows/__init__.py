"""Use cases: each takes parsed inputs and the stores and adapters it needs, and returns decisions."""

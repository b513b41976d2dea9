"""The Lambda edge: the API resolver and status map, request bodies, the function runtime and observability."""

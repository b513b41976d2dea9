"""The Lambda edge: the API resolver and status map, requests into typed inputs, the function runtime."""

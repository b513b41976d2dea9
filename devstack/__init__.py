"""The stack without AWS: template.yaml's resources on moto, its functions invoked in-process.

Tests use it to run the real handlers against the template's own definitions; the local stack
(`make dev`) builds on the same pieces.
"""

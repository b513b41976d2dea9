"""relay-clients: the operators' command. Not part of the Lambda layer: no function imports it."""

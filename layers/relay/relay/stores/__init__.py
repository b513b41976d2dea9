"""Data access: one store per table, each taking its boto3 client."""

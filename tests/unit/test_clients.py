"""Client tokens refused before any lookup when they cannot belong to a client."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from relay.errors import Unauthorized
from relay.stores.clients import ClientStore


@pytest.mark.parametrize("client_id", ["a" * 3000, "Acme", "acme:1", "é", " acme"])
def test_a_token_whose_client_id_no_client_can_have_is_refused_without_a_lookup(client_id: str) -> None:
    """DynamoDB answers a key over 2 KB with an error (a 500 for the client), not with "no such client"."""
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    store = ClientStore(dynamodb, "clients")

    with Stubber(dynamodb), pytest.raises(Unauthorized, match="invalid client token"):
        store.authenticate(f"{client_id}.secret")  # a lookup would raise UnStubbedResponseError

"""The local stack's Prometheus discovers pods as its own ServiceAccount: list and watch pods, no more."""

from __future__ import annotations

import pytest

from thermostat_apiserver import ApiServer
from thermostat_apiserver.identity import service_account_user
from thermostat_apiserver.rbac import Attributes
from thermostat_stack.scrape import discovery_token

pytestmark = pytest.mark.fast


async def test_the_discovery_account_may_list_and_watch_pods_and_nothing_else() -> None:
    async with ApiServer() as api:
        token = discovery_token(api)
        user = api.tokens.authenticate(f"Bearer {token}")
        assert user == service_account_user("monitoring", "prometheus")
        assert api.authorizer.allows(user, Attributes("list", "", "pods"))
        assert api.authorizer.allows(user, Attributes("watch", "", "pods", namespace="default"))
        assert not api.authorizer.allows(user, Attributes("get", "", "secrets", namespace="default"))
        assert not api.authorizer.allows(user, Attributes("patch", "", "pods", namespace="default"))

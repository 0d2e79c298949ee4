"""The accounts that job owners name (`account:<id>`, see account_key_for_request), for the jobs admin."""

from __future__ import annotations

from collections.abc import Iterable

from .models import Account

PREFIX = "account:"


def owner_names(owners: Iterable[str]) -> dict[str, str]:
    """Return the account name of each `account:<id>` key in `owners`, in one query (JOBS["OWNER_NAMES"]).

    Keys that name no account (another kind of owner, a deleted account) are left out.
    """
    keys_by_id = {}
    for key in owners:
        number = key.removeprefix(PREFIX)
        # Only the exact form the resolver writes: "account:07" is not account 7.
        if key.startswith(PREFIX) and number.isdecimal() and str(int(number)) == number:
            keys_by_id[int(number)] = key
    rows = Account.objects.filter(pk__in=keys_by_id).values_list("pk", "name")
    return {keys_by_id[pk]: name for pk, name in rows}

"""The production profile's own parts that need Redis."""

import os

import pytest

pytestmark = [pytest.mark.postgres]


def test_two_stacks_claim_two_redis_databases_and_a_released_one_is_claimed_again():
    import redis

    from ops.production import CLAIM_KEY, claim_redis_db, release_redis_db

    first = claim_redis_db()
    try:
        second = claim_redis_db()
        try:
            assert first != second
            for url in (first, second):
                assert int(redis.Redis.from_url(url).get(CLAIM_KEY)) == os.getpid()
        finally:
            release_redis_db(second)
        assert claim_redis_db() == second  # released: free to claim again
        release_redis_db(second)
    finally:
        release_redis_db(first)

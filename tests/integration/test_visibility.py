"""worker.visibility against a real Redis and kombu's Redis transport: a channel renews the
messages it holds, and only those."""

from __future__ import annotations

from typing import Any

from kombu import Connection, Exchange, Queue

from worker.visibility import held_tags, renew


def test_renew_moves_only_the_held_unacknowledged_messages(
    redis_url: str, redis_client: Any
) -> None:
    queue = Queue("q", Exchange("q"), routing_key="q")
    with Connection(redis_url) as mine, Connection(redis_url) as other:
        with mine.Producer() as producer:
            for i in range(3):
                producer.publish(
                    {"i": i}, exchange=queue.exchange, routing_key="q", declare=[queue]
                )
        channel = mine.channel()
        held = queue(channel).get(no_ack=False)
        acked = queue(channel).get(no_ack=False)
        elsewhere = queue(other.channel()).get(no_ack=False)
        acked.ack()
        for tag in (held.delivery_tag, elsewhere.delivery_tag):
            redis_client.zadd("unacked_index", {tag: 1000.0})  # delivered long ago

        assert held_tags(channel) == [held.delivery_tag]
        assert renew(channel, now=5000.0) == 1

        assert redis_client.zscore("unacked_index", held.delivery_tag) == 5000.0
        assert redis_client.zscore("unacked_index", elsewhere.delivery_tag) == 1000.0
        assert redis_client.zscore("unacked_index", acked.delivery_tag) is None  # not brought back
        assert redis_client.hexists("unacked", held.delivery_tag)
        channel.close()

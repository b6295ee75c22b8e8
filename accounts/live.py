"""Live window bars: the gateway says "usage changed for user X", the user's open overview pages hear it.

Each overview page holds a WebSocket (accounts/consumers.py) in the channel-layer group of its user.
The announcement costs the gateway no round trip of its own: with Redis, its PUBLISH rides in the
pipeline that already carries the usage batch to the stream (channels-redis's pub/sub layer delivers
a group message as one PUBLISH on the group's channel). Without Redis (embedded mode) it goes through
the in-memory layer of this one process, and when the gateway's Redis is not the layer's
(GATEWAY_REDIS_URL, gateway/redis_clients.py) through the layer's own group_send, a round trip
after the batch's. Pages poll as well, so a lost announcement only delays a bar.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer
from redis.asyncio.client import Pipeline

logger = logging.getLogger(__name__)

USAGE_CHANGED = {"type": "usage.changed"}


def usage_group(user_id: int) -> str:
    return f"usage-{user_id}"


def announce_in_pipeline(pipe: Pipeline, *, user_ids: Iterable[int]) -> None:
    """Add one PUBLISH per user to a Redis pipeline its caller executes anyway (no extra round trip)."""
    layer = get_channel_layer()
    if not isinstance(layer, RedisPubSubChannelLayer):
        return
    payload = layer.serialize(USAGE_CHANGED)
    for user_id in set(user_ids):
        # The channel the layer's own group_send would publish on (channels_redis.pubsub).
        pipe.publish(layer._get_group_channel_name(usage_group(user_id)), payload)


async def announce_through_layer(*, user_ids: Iterable[int]) -> None:
    """Through the layer's own group_send: in embedded mode (the consumers share this process and
    its in-memory layer), and when the usage batch went to a Redis other than the layer's."""
    layer = get_channel_layer()
    if not isinstance(layer, InMemoryChannelLayer | RedisPubSubChannelLayer):
        return
    for user_id in set(user_ids):
        try:
            await layer.group_send(usage_group(user_id), USAGE_CHANGED)
        except Exception:  # a full queue of a stalled page must not disturb usage writing
            logger.debug("live usage announcement for user %s dropped", user_id, exc_info=True)

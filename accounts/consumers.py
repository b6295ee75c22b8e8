"""The overview's WebSocket: tells a logged-in user's open pages that their usage changed.

The message carries no numbers: the page fetches its window bars again (the same view that renders
them), so what the socket shows can never differ from what a reload shows.
"""

from __future__ import annotations

from channels.generic.websocket import AsyncWebsocketConsumer

from accounts.live import usage_group

UNAUTHENTICATED = 4401  # an application close code: the page stops retrying and keeps polling


class UsageConsumer(AsyncWebsocketConsumer):
    group: str | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=UNAUTHENTICATED)
            return
        self.group = usage_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The page has nothing to say; anything it sends is ignored."""

    async def usage_changed(self, event: dict[str, str]) -> None:
        await self.send(text_data="usage-changed")

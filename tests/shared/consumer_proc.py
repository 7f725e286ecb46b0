"""A real consumer process for the at-least-once test: it records each event it handled
in a Redis list and hangs (until SIGKILLed) in the middle of handling the event whose
``reason`` is "hang"."""
import asyncio
import sys

from tarn_shared.consumer import ConsumerConfig, StreamConsumer
from tarn_shared.streams import connect


async def main(redis_url: str, stream: str, group: str, consumer: str, record_key: str) -> None:
    client = connect(redis_url)

    async def handle(_stream, _entry_id, event):
        if getattr(event, "reason", "") == "hang":
            await client.rpush(record_key + ":hung", event.event_id)
            await asyncio.Event().wait()  # dies here, unacked
        await client.rpush(record_key, event.event_id)

    await StreamConsumer(client, [stream], ConsumerConfig(group=group, consumer=consumer, block_ms=200),
                         handle).run()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))

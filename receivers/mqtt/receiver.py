"""The MQTT receiver: subscribes for IoT readings and acknowledges them once the pipeline accepted them.

paho-mqtt runs its network loop in its own thread, which reconnects with
exponential backoff whenever the broker goes away. Each message is handed
to the event loop, where a worker takes every message waiting, decodes them
into one batch per subscription and pushes it; QoS 1/2 messages are
acknowledged (paho manual acknowledgement) only after the pipeline accepted
or refused them for good, so that the broker delivers them again otherwise.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from otelml.component import Component, CreateSettings, Host
from otelml.consumer import Consumer
from otelml.encoding import BatchBuilder
from otelml.pdata import Signal
from otelml.receiverhelper import Outcome, PipelinePusher, report_crash
from otelml.receivers.mqtt.config import MQTTReceiverConfig, SubscriptionConfig
from otelml.receivers.mqtt.topics import TopicTemplate

TRANSPORT = "mqtt"
TOPIC_ATTRIBUTE = "mqtt.topic"
# Messages received but not yet handled; past this the network thread waits,
# so the broker's socket takes the pressure. With MQTT 5 the broker stops at
# receive_maximum unacknowledged QoS 1/2 messages first, so only QoS 0 (and
# MQTT 3.1.1) can get here.
MAX_PENDING = 1000


@dataclasses.dataclass(frozen=True, eq=False)
class _Subscription:
    config: SubscriptionConfig
    consumer: Consumer
    template: TopicTemplate | None

    def builder(self) -> BatchBuilder:
        return BatchBuilder(
            self.config.signal, self.config.encoding, flatten_json=True, timestamp_field=self.config.timestamp_field or None
        )


@dataclasses.dataclass(frozen=True)
class _Received:
    message: mqtt.MQTTMessage
    time_ns: int


class MQTTReceiver(Component):
    def __init__(self, settings: CreateSettings, config: MQTTReceiverConfig, consumers: dict[Signal, Consumer]):
        self.settings = settings
        self.config = config
        self.logger = settings.logger
        self.pusher = PipelinePusher(settings, TRANSPORT, config.error_backoff)
        self.subscriptions = []
        for subscription in config.topics:
            if subscription.signal not in consumers:
                self.logger.warning(
                    "not subscribing to %s: no %s pipeline uses this receiver", subscription.topic, subscription.signal.value
                )
                continue
            template = TopicTemplate(subscription.resource_from_topic) if subscription.resource_from_topic else None
            self.subscriptions.append(_Subscription(subscription, consumers[subscription.signal], template))
        self._client: mqtt.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._incoming: asyncio.Queue[_Received | None] = asyncio.Queue()
        self._pending = threading.BoundedSemaphore(max(MAX_PENDING, config.receive_maximum))
        # QoS 1/2 messages received, and acknowledged (each counter is written by one thread only).
        self._received_qos = 0
        self._acknowledged_qos = 0
        self._closing = threading.Event()
        # Set while connected with every subscription granted.
        self.subscribed = threading.Event()
        self._stop_retrying = asyncio.Event()
        self._worker: asyncio.Task | None = None
        self._stopped = False

    async def start(self, host: Host) -> None:
        self._loop = asyncio.get_running_loop()
        self._client = self._new_client()
        host_name, port, _ = self.config.address()
        properties = None
        clean_start = self.config.clean_start
        if self.config.protocol_version == "5":
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = 0 if clean_start else int(self.config.session_expiry)
            # Flow control: the broker holds back what otelml has not acknowledged yet, rather than
            # sending it on to wait in otelml's memory.
            properties.ReceiveMaximum = self.config.receive_maximum
            # paho's default cleans the session at the first connection only.
            self._client.connect_async(
                host_name, port, int(self.config.keepalive), clean_start=clean_start, properties=properties
            )
        else:
            self._client.connect_async(host_name, port, int(self.config.keepalive))
        self._worker = asyncio.create_task(self._work())
        report_crash(self._worker, self.settings, host, "the message worker")
        self._client.loop_start()
        self.logger.info("connecting to %s", self.config.broker)

    async def shutdown(self) -> None:
        if self._stopped or self._client is None:
            self._stopped = True
            return
        self._stopped = True
        self._closing.set()
        self._stop_retrying.set()
        # Messages queued before this marker are still handled (or abandoned
        # unacknowledged while the pipeline refuses them).
        self._incoming.put_nowait(None)
        if self._worker is not None:
            await asyncio.gather(self._worker, return_exceptions=True)
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)

    # --- paho side (network thread) -------------------------------------------

    def _new_client(self) -> mqtt.Client:
        config = self.config
        version = mqtt.MQTTv5 if config.protocol_version == "5" else mqtt.MQTTv311
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=config.client_id,
            protocol=version,
            clean_session=config.clean_start if version == mqtt.MQTTv311 else None,
            manual_ack=True,
        )
        if config.username:
            client.username_pw_set(config.username, config.password.get_secret_value() or None)
        if config.address()[2]:
            tls = config.tls
            client.tls_set_context(tls.ssl_context() if tls else None)
            if tls and tls.insecure_skip_verify:
                client.tls_insecure_set(True)
        # paho takes float seconds, though its stubs say int.
        client.reconnect_delay_set(config.reconnect_min_delay, config.reconnect_max_delay)  # type: ignore[arg-type]
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.logger.error("the broker %s refused the connection: %s", self.config.broker, reason_code)
            return
        self.logger.info("connected to %s (session present: %s)", self.config.broker, flags.session_present)
        if self.subscriptions:
            client.subscribe([(s.config.topic, s.config.qos) for s in self.subscriptions])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        refused = [(s, code) for s, code in zip(self.subscriptions, reason_codes) if code.is_failure]
        for subscription, reason_code in refused:
            self.logger.error("the broker refused the subscription to %s: %s", subscription.config.topic, reason_code)
        if not refused:
            self.subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.subscribed.clear()
        if not self._closing.is_set():
            self.logger.warning("disconnected from %s (%s); reconnecting with backoff", self.config.broker, reason_code)

    @property
    def unacknowledged(self) -> int:
        """QoS 1/2 messages received from the broker and not acknowledged yet."""
        return self._received_qos - self._acknowledged_qos

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        if message.qos > 0:
            self._received_qos += 1
        received = _Received(message, time.time_ns())
        while not self._pending.acquire(timeout=0.5):
            if self._closing.is_set():
                return  # not acknowledged: the broker keeps it for the next session
        assert self._loop is not None  # messages come only once started
        self._loop.call_soon_threadsafe(self._incoming.put_nowait, received)

    # --- event loop side --------------------------------------------------------

    async def _work(self) -> None:
        while True:
            received = [await self._incoming.get()]
            while not self._incoming.empty() and received[-1] is not None:
                received.append(self._incoming.get_nowait())
            done = received[-1] is None
            if done:
                received.pop()
            try:
                await self._handle([item for item in received if item is not None])
            finally:
                for _ in received:
                    self._pending.release()
            if done:
                return

    async def _handle(self, received: list[_Received]) -> None:
        builders: dict[_Subscription, tuple[BatchBuilder, list[mqtt.MQTTMessage]]] = {}
        for item in received:
            message = item.message
            subscription = self._subscription_of(message.topic)
            if subscription is None:
                self.pusher.bad_message("no_subscription", f"topic {message.topic}", ValueError("no subscription matches it"))
                self._acknowledge(message)
                continue
            if len(message.payload) > self.config.max_message_bytes:
                error = ValueError(f"{len(message.payload)} bytes, over max_message_bytes ({self.config.max_message_bytes})")
                self.pusher.bad_message("too_large", f"topic {message.topic}", error)
                self._acknowledge(message)
                continue
            if subscription not in builders:
                builders[subscription] = (subscription.builder(), [])
            builder, messages = builders[subscription]
            resource = subscription.template.attributes(message.topic) if subscription.template else None
            try:
                builder.add(bytes(message.payload), resource, {TOPIC_ATTRIBUTE: message.topic}, time_ns=item.time_ns)
            except ValueError as error:
                self.pusher.bad_message("undecodable", f"topic {message.topic}", error)
                self._acknowledge(message)
                continue
            messages.append(message)
        for subscription, (builder, messages) in builders.items():
            if builder.repaired:
                self.pusher.repaired(subscription.config.signal, builder.repaired, f"subscription {subscription.config.topic}")
            outcome = Outcome.ACCEPTED
            if builder.items:
                outcome = await self.pusher.push(subscription.consumer, builder.batch, builder.items, self._stop_retrying)
            if outcome is not Outcome.ABANDONED:
                for message in messages:
                    self._acknowledge(message)

    def _subscription_of(self, topic: str) -> _Subscription | None:
        for subscription in self.subscriptions:
            if mqtt.topic_matches_sub(subscription.config.topic, topic):
                return subscription
        return None

    def _acknowledge(self, message: mqtt.MQTTMessage) -> None:
        if message.qos > 0 and self._client is not None:
            self._client.ack(message.mid, message.qos)
            self._acknowledged_qos += 1

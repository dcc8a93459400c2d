from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from otelml.configmodel import ComponentConfig, Duration
from otelml.configretry import RetryConfig
from otelml.encoding import Encoding, encoding_problem
from otelml.pdata import Signal
from otelml.receiverhelper import DEFAULT_ERROR_BACKOFF
from otelml.receivers.mqtt.topics import TopicTemplate, filter_problem
from otelml.tlsconfig import ClientTLSConfig

_DEFAULT_PORTS = {"tcp": 1883, "ssl": 8883}


class SubscriptionConfig(ComponentConfig):
    topic: str
    qos: Literal[0, 1, 2] = 1
    encoding: Encoding = Encoding.JSON
    signal: Literal[Signal.LOGS, Signal.TRACES] = Signal.LOGS
    # e.g. sensors/{device.id}/{sensor.type}: topic levels that become resource attributes.
    resource_from_topic: str = ""
    # json encoding: the (dotted) field with the reading's time; absent means the receive time.
    timestamp_field: str = ""

    def validate_config(self) -> list[str]:
        problems = []
        problem = filter_problem(self.topic)
        if problem:
            problems.append(f"topic: {problem}")
        problem = encoding_problem(self.signal, self.encoding)
        if problem:
            problems.append(f"encoding: {problem}")
        if self.resource_from_topic:
            problem = TopicTemplate.problem(self.resource_from_topic)
            if problem:
                problems.append(f"resource_from_topic: {problem}")
        if self.timestamp_field and self.encoding is not Encoding.JSON:
            problems.append("timestamp_field: only the json encoding has fields")
        return problems


class MQTTReceiverConfig(ComponentConfig):
    broker: str = "tcp://localhost:1883"
    client_id: str = "otelml"
    protocol_version: Literal["5", "3.1.1"] = "5"
    username: str = ""
    password: SecretStr = SecretStr("")
    tls: ClientTLSConfig | None = None
    # False keeps the session (subscriptions and unacknowledged messages) across reconnects and restarts.
    clean_start: bool = True
    # MQTT 5: how long the broker keeps a kept session after a disconnect.
    session_expiry: Duration = 3600.0
    # MQTT 5 flow control: QoS 1/2 messages the broker may have sent and not yet had acknowledged.
    receive_maximum: int = Field(1000, ge=1, le=65535)
    keepalive: Duration = 60.0
    reconnect_min_delay: Duration = 1.0
    reconnect_max_delay: Duration = 30.0
    # Larger payloads are counted as bad messages and dropped.
    max_message_bytes: int = Field(1_048_576, ge=1)
    error_backoff: RetryConfig = DEFAULT_ERROR_BACKOFF
    topics: list[SubscriptionConfig] = []

    @field_validator("protocol_version", mode="before")
    @classmethod
    def _version_as_text(cls, value):
        # YAML reads 5 as a number and 3.1.1 as text.
        return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value

    def validate_config(self) -> list[str]:
        problems = []
        parts = urlsplit(self.broker)
        try:
            _ = parts.port  # reading it checks it
        except ValueError:
            problems.append(f"broker: {self.broker!r} has an invalid port")
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            problems.append(f"broker: {self.broker!r} must be tcp://host:port or ssl://host:port")
        elif parts.scheme == "tcp" and self.tls is not None and not self.tls.insecure:
            problems.append("tls: set, but the broker URL is tcp://; use ssl://")
        if not self.topics:
            problems.append("topics: at least one subscription is required")
        if not self.clean_start and not self.client_id:
            problems.append("client_id: a kept session (clean_start: false) needs a fixed client_id")
        if self.keepalive < 1:
            problems.append("keepalive: must be at least 1s")
        if not 0 < self.reconnect_min_delay <= self.reconnect_max_delay:
            problems.append("reconnect_max_delay: must be positive and not shorter than reconnect_min_delay")
        return problems

    def address(self) -> tuple[str, int, bool]:
        """Host, port, and whether the connection uses TLS."""
        parts = urlsplit(self.broker)
        return parts.hostname or "", parts.port or _DEFAULT_PORTS[parts.scheme], parts.scheme == "ssl"

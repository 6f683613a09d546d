"""Every Redis key name the store uses, built in one place under one prefix.

One module so an operator can read what lives in their Redis, share a server
between deployments by giving each a prefix, and delete one deployment's data with
``SCAN MATCH prefix:*``. Nothing else (Python or Lua) builds a key name: the Lua
scripts receive every key in ``KEYS``.

========================================  ======  =========================================
key                                       type    holds
========================================  ======  =========================================
``{p}:feeds:due``                         zset    listed feed URL -> due time (µs): its
                                                  next_check, or the lease end once claimed
``{p}:feeds:state``                       hash    feed URL -> FeedState JSON (kept when
                                                  the feed is unlisted)
``{p}:seen:{key}``                        string  "1", expiring after the seen TTL
``{p}:stories``                           zset    story id -> last_seen (µs)
``{p}:stories:data``                      hash    story id -> Story JSON
``{p}:members``                           zset    member id -> seen_at (µs)
``{p}:members:data``                      hash    member id -> StoryMember JSON
``{p}:members:seq``                       zset    member id -> commit sequence number: the
                                                  change feed other instances follow
``{p}:members:counter``                   string  the last sequence number handed out
``{p}:lock:{name}``                       string  a lease's random token, expiring (PX)
``{p}:batch:{token}``                     string  "1" once an entry of a batch commit that
                                                  stops at its first refusal was refused;
                                                  deleted by the batch, expiring (PX)
``{p}:epoch``                             string  a random token set when the data is first
                                                  written to: another one (or none) means
                                                  everything above was lost since
``{p}:outbox:sinks``                      set     every sink that ever had an item
``{p}:outbox:{sink}:queue``               zset    alert id -> created_at (µs): its place
                                                  in the queue, which a retry keeps
``{p}:outbox:layout``                     string  "2" once every queue is scored by
                                                  created_at (earlier versions scored a
                                                  retried item by its retry time)
``{p}:outbox:{sink}:item:{alert_id}``     hash    the OutboxItem's fields
========================================  ======  =========================================
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "news-monitor"


def member_id(story_id: str, article_key: str) -> str:
    """A story member's field name in the members zset and hash (not a key name)."""
    return f"{story_id}\n{article_key}"


@dataclass(frozen=True)
class Keys:
    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not self.prefix:
            raise ValueError("the Redis key prefix must not be empty")

    @property
    def pattern(self) -> str:
        """``SCAN MATCH`` pattern for every key of this deployment."""
        escaped = "".join("\\" + c if c in "*?[]\\" else c for c in self.prefix)
        return f"{escaped}:*"

    @property
    def feeds_due(self) -> str:
        return f"{self.prefix}:feeds:due"

    @property
    def feeds_state(self) -> str:
        return f"{self.prefix}:feeds:state"

    def seen(self, key: str) -> str:
        return f"{self.prefix}:seen:{key}"

    @property
    def stories(self) -> str:
        return f"{self.prefix}:stories"

    @property
    def stories_data(self) -> str:
        return f"{self.prefix}:stories:data"

    @property
    def members(self) -> str:
        return f"{self.prefix}:members"

    @property
    def members_data(self) -> str:
        return f"{self.prefix}:members:data"

    @property
    def members_seq(self) -> str:
        return f"{self.prefix}:members:seq"

    @property
    def members_counter(self) -> str:
        return f"{self.prefix}:members:counter"

    @property
    def epoch(self) -> str:
        return f"{self.prefix}:epoch"

    def lock(self, name: str) -> str:
        return f"{self.prefix}:lock:{name}"

    def batch(self, token: str) -> str:
        return f"{self.prefix}:batch:{token}"

    @property
    def outbox_sinks(self) -> str:
        return f"{self.prefix}:outbox:sinks"

    @property
    def outbox_layout(self) -> str:
        return f"{self.prefix}:outbox:layout"

    def outbox_queue(self, sink: str) -> str:
        return f"{self.prefix}:outbox:{sink}:queue"

    def outbox_item(self, sink: str, alert_id: str) -> str:
        return f"{self.prefix}:outbox:{sink}:item:{alert_id}"

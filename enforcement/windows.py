"""The sending-limit windows in Redis: :mod:`mailflow.ratewindow`'s streaming algorithm in one Lua script.

Per (tenant, sender, limit) a sorted set (score = epoch ms, member = ``<message id>:<value>``) and its running
sum, exactly the layout of the ``mailflow.ratewindow`` docstring: the script evicts what left the window
(``at <= now - W``, and after a release what was sent before it: mail sent after a release counts from zero),
adds the message once (``ZADD NX``: a re-sent id counts once), keeps the sum, sets both keys to expire after
``W`` idle, and returns the three sums. It first checks the sender's restriction key, so one round trip both
refuses a restricted sender and counts a message. Atomic, so concurrent policy services agree.
"""

from __future__ import annotations

from mailflow.ratewindow import LIMIT_WINDOWS, SendingLimits

KEY_PREFIX = "soc:policy"
LIMIT_NAMES = tuple(LIMIT_WINDOWS)  # external_per_hour, internal_per_hour, total_per_day
WINDOW_MS = tuple(int(window.total_seconds() * 1000) for window in LIMIT_WINDOWS.values())

COUNT_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {1, 0, 0, 0} end
local now = tonumber(ARGV[1])
local since = tonumber(ARGV[3])
local out = {0}
for i = 1, 3 do
  local key = KEYS[i + 1]
  local sum_key = key .. ':sum'
  local window = tonumber(ARGV[3 + i])
  local cut = now - window
  if since > 0 and since - 1 > cut then cut = since - 1 end
  local gone = redis.call('ZRANGEBYSCORE', key, '-inf', cut)
  if #gone > 0 then
    local drop = 0
    for _, member in ipairs(gone) do drop = drop + tonumber(string.match(member, ':(%d+)$')) end
    redis.call('DECRBY', sum_key, drop)
    redis.call('ZREMRANGEBYSCORE', key, '-inf', cut)
  end
  local value = tonumber(ARGV[6 + i])
  if value > 0 and redis.call('ZADD', key, 'NX', now, ARGV[2] .. ':' .. value) == 1 then
    redis.call('INCRBY', sum_key, value)
  end
  local total = tonumber(redis.call('GET', sum_key) or '0')
  if redis.call('ZCARD', key) == 0 then
    redis.call('DEL', key, sum_key)
    total = 0
  else
    redis.call('PEXPIRE', key, window)
    redis.call('PEXPIRE', sum_key, window)
  end
  out[i + 1] = total
end
return out
"""


def window_keys(tenant_slug: str, sender: str) -> list[str]:
    """The three sorted-set keys of a sender (each has a ``:sum`` companion)."""
    return [f"{KEY_PREFIX}:{tenant_slug}:{sender}:{name}" for name in LIMIT_NAMES]


def script_args(
    now_ms: int, message_id: str, since_ms: int, external: int, internal: int, total: int
) -> list[int | str]:
    """ARGV of :data:`COUNT_SCRIPT`: now, the member id, the release time (0: none), the three windows in
    ms, then the three values."""
    return [now_ms, message_id, since_ms, *WINDOW_MS, external, internal, total]


def first_over(limits: SendingLimits, sums: list[int]) -> tuple[str, int, int] | None:
    """The first limit (in :data:`LIMIT_WINDOWS` order) whose window sum is strictly greater than it (0 is
    off), as ``(name, limit, count)``."""
    for name, count in zip(LIMIT_NAMES, sums, strict=True):
        limit = getattr(limits, name)
        if 0 < limit < count:
            return name, limit, count
    return None

"""What travels through the broker (``source=broker``): one stream entry per event, one per scored batch.

An event is one entry of the input stream with a single field ``e``: its index in the window (int64),
its intended time (float64, seconds from the window's start) and
its feature row (float64 each), packed little-endian — 272 bytes for 32 features, parsed by one
``np.frombuffer`` per batch. A scored batch is one entry of the output stream: the events' indices
(``i``, int64), their scores (``s``, float64, bit for bit), and the consumer's clock when it read the
batch (``r``) and when it wrote it (``w``; ``time.monotonic``, one clock for every process on the host), so the sink can split an event's time into hops.

The producer sends events as pre-encoded ``XADD`` commands (RESP), pipelined: each one's bytes are
fixed-length, so a window's commands are built by numpy in one pass and sent as slices.
"""

from __future__ import annotations

import struct

import numpy as np

#: the consumer group every scorer reads the input stream through
GROUP = "scorers"
FIELD = b"e"


def stream_names(window: str) -> tuple[str, str]:
    """The input and output stream of one window (each window starts on empty streams)."""
    return f"bench:{window}:events", f"bench:{window}:scores"


def payload_len(n_features: int) -> int:
    return 8 * (2 + n_features)


def encode_xadd(stream: str, X: np.ndarray, schedule: np.ndarray) -> tuple[np.ndarray, int]:
    """Every event of a window as one ``XADD <stream> * e <payload>`` command: an (n, L) uint8 array
    (row k is event k's command; the window's events cycle through ``X``), and L."""
    n, nf = schedule.size, X.shape[1]
    plen = payload_len(nf)
    s = stream.encode()
    head = b"*5\r\n$4\r\nXADD\r\n$%d\r\n%s\r\n$1\r\n*\r\n$1\r\ne\r\n$%d\r\n" % (len(s), s, plen)
    width = len(head) + plen + 2
    out = np.empty((n, width), np.uint8)
    out[:, : len(head)] = np.frombuffer(head, np.uint8)
    body = np.empty((n, 2 + nf), "<f8")
    body[:, 0].view("<i8")[:] = np.arange(n)
    body[:, 1] = schedule
    body[:, 2:] = X[np.arange(n) % len(X)]
    out[:, len(head) : len(head) + plen] = body.view(np.uint8).reshape(n, plen)
    out[:, -2:] = np.frombuffer(b"\r\n", np.uint8)
    return out, width


def decode_events(payloads: list, n_features: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """Indices, intended times and rows of well-formed payloads, and the positions of malformed ones
    (missing, or of the wrong length): those are counted and skipped, never scored."""
    plen = payload_len(n_features)
    good, bad = [], []
    for k, p in enumerate(payloads):
        (good if isinstance(p, bytes) and len(p) == plen else bad).append(k)
    if len(good) == len(payloads):
        buf = b"".join(payloads)
    else:
        buf = b"".join(payloads[k] for k in good)
    body = np.frombuffer(buf, "<f8").reshape(len(good), 2 + n_features)
    return body[:, 0].view("<i8").copy(), body[:, 1].copy(), np.ascontiguousarray(body[:, 2:]), bad


def encode_scores(idx: np.ndarray, scores: np.ndarray, read_t: float, write_t: float) -> dict[str, bytes]:
    return {
        "i": np.ascontiguousarray(idx, "<i8").tobytes(),
        "s": np.ascontiguousarray(scores, "<f8").tobytes(),
        "r": struct.pack("<d", read_t),
        "w": struct.pack("<d", write_t),
    }


def decode_scores(fields: dict) -> tuple[np.ndarray, np.ndarray, float, float]:
    return (
        np.frombuffer(fields[b"i"], "<i8"),
        np.frombuffer(fields[b"s"], "<f8"),
        struct.unpack("<d", fields[b"r"])[0],
        struct.unpack("<d", fields[b"w"])[0],
    )

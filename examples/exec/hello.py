#!/usr/bin/env python3
"""hello: a Tributary exec connector (see docs/exec-protocol.md).

Emits `count` greeting documents with text content, one every `pace` seconds,
saves a checkpoint every `checkpoint_every` documents and resumes after it.
"""
import json
import sys
import time


def send(kind, **fields):
    print(json.dumps({"type": kind, **fields}), flush=True)


req = json.loads(sys.stdin.readline())
config = req["config"]
count, pace = config.get("count", 3), config.get("pace", 0)
every = config.get("checkpoint_every", 10)
start = req["checkpoint"]["next"] if req["resumed"] else 0
send("log", level="info", message="hello starting", fields={"start": start, "count": count})
send("total", total=count)
for i in range(start, count):
    time.sleep(pace)
    doc = {"external_id": f"hello-{i}", "title": f"Hello {i}",
           "metadata": {"mime_type": "text/plain"}, "permissions": {"public": True}}
    send("emit", document=doc, content=f"Hello, world number {i}!\n")
    send("scanned", n=1)
    if (i + 1) % every == 0 and i + 1 < count:
        send("checkpoint", checkpoint={"next": i + 1})
send("done", checkpoint={"next": count})

"""The official Langfuse Python SDK as a peer of the Rust SDK in tests/interop.rs.

Usage: python peer.py <command> [arguments]; the Langfuse client is configured from
LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY and LANGFUSE_BASE_URL (the fake server). Results go to
stdout as one JSON document.

  parent            a span "python-parent" with propagated attributes (as baggage); prints the
                    W3C headers a request or a child process would carry
  worker-env        joins the context in TRACEPARENT / BAGGAGE and records "python-worker"
  worker-headers H  joins the context in the headers H (JSON) and records "python-handler"
  trace-ids S...    create_trace_id(seed=S) for each seed
  experiment-ids    _create_experiment_id for the cases read as JSON from stdin
  item-ids          the local experiment item id of each input read as JSON from stdin
  prompt N V        get_prompt(N).compile(**V), V as JSON
  media-refs        the media reference of each data URI read as JSON from stdin
"""

import json
import os
import sys

from langfuse import Langfuse, propagate_attributes
from opentelemetry import context as otel_context
from opentelemetry.propagate import extract, inject


def client():
    return Langfuse(
        public_key=os.environ["LANGFUSE_PUBLIC_KEY"],
        secret_key=os.environ["LANGFUSE_SECRET_KEY"],
        base_url=os.environ["LANGFUSE_BASE_URL"],
    )


def parent():
    langfuse = client()
    with langfuse.start_as_current_observation(name="python-parent"):
        with propagate_attributes(
            session_id="chat 42",
            user_id="user-7",
            tags=["interop", "py"],
            metadata={"tier": "gold+plus"},
            trace_name="interop-trace",
            version="v1",
            as_baggage=True,
        ):
            carrier = {}
            inject(carrier)
    langfuse.flush()
    return carrier


def worker(carrier, name):
    langfuse = client()
    token = otel_context.attach(extract(carrier))
    try:
        with langfuse.start_as_current_observation(name=name):
            with langfuse.start_as_current_observation(name=name + "-child"):
                pass
    finally:
        otel_context.detach(token)
    langfuse.flush()
    return {"done": True}


def main(argv):
    command = argv[1]
    if command == "parent":
        result = parent()
    elif command == "worker-env":
        carrier = {"traceparent": os.environ["TRACEPARENT"]}
        if "BAGGAGE" in os.environ:
            carrier["baggage"] = os.environ["BAGGAGE"]
        result = worker(carrier, "python-worker")
    elif command == "worker-headers":
        result = worker(json.loads(argv[2]), "python-handler")
    elif command == "trace-ids":
        result = [Langfuse.create_trace_id(seed=seed) for seed in argv[2:]]
    elif command == "experiment-ids":
        langfuse = client()
        result = [
            langfuse._create_experiment_id(
                project_id=case["project_id"],
                dataset_id=case["dataset_id"],
                run_name=case["run_name"],
            )
            for case in json.load(sys.stdin)
        ]
    elif command == "item-ids":
        from langfuse._client.attributes import _serialize
        from langfuse._client.utils import get_sha256_hash_hex

        result = [get_sha256_hash_hex(_serialize(value))[:16] for value in json.load(sys.stdin)]
    elif command == "media-refs":
        from langfuse.media import LangfuseMedia

        result = [
            LangfuseMedia(base64_data_uri=uri)._reference_string for uri in json.load(sys.stdin)
        ]
    elif command == "prompt":
        prompt = client().get_prompt(argv[2])
        result = {"version": prompt.version, "compiled": prompt.compile(**json.loads(argv[3]))}
    else:
        raise SystemExit(f"unknown command {command!r}")
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main(sys.argv)

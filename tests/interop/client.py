"""A Python client generated with grpcio-tools, run by tests/interop.rs against a live gateway.

Usage: client.py ADDRESS PROTO_DIR OUT_DIR

Generates the stubs from the contract, then:
  1. streams CreateResponse and checks that the joined output_text deltas equal the completed
     response's output_text;
  2. sends a request without a model and reads the rich error details with grpcio-status;
  3. continues a conversation (CreateConversation, two CreateResponse calls with `conversation`,
     ListConversationItems);
  4. starts a background response with stream off and polls GetResponse until it finishes.
Prints one JSON object with what it saw; exits non-zero when a check fails.
"""

import glob
import json
import os
import sys


def generate(proto_dir, out_dir):
    from grpc_tools import protoc

    os.makedirs(out_dir, exist_ok=True)
    files = sorted(glob.glob(os.path.join(proto_dir, "openai_gateway", "v1", "*.proto")))
    well_known = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    args = ["protoc", f"-I{proto_dir}", f"-I{well_known}", f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}", *files]
    if protoc.main(args) != 0:
        raise SystemExit("grpc_tools.protoc failed")
    sys.path.insert(0, out_dir)


def main():
    address, proto_dir, out_dir = sys.argv[1:4]
    generate(proto_dir, out_dir)

    import grpc
    from grpc_status import rpc_status
    from google.rpc import error_details_pb2
    import time

    from openai_gateway.v1 import (
        conversations_pb2,
        conversations_pb2_grpc,
        responses_pb2,
        responses_pb2_grpc,
    )

    result = {}
    with grpc.insecure_channel(address) as channel:
        stub = responses_pb2_grpc.ResponsesServiceStub(channel)

        # 1. A streamed response: deltas joined == output_text of the completed response.
        request = responses_pb2.CreateResponseRequest(
            model="gpt-4.1",
            input_text="Write a 1-sentence welcome message for a new user.",
        )
        deltas, kinds, final_text = [], [], None
        for message in stub.CreateResponse(request, timeout=30):
            kind = message.WhichOneof("event")
            kinds.append(kind)
            if kind == "output_text_delta":
                deltas.append(message.output_text_delta.delta)
            elif kind == "completed":
                final_text = message.completed.response.output_text
        result["first"], result["last"] = kinds[0], kinds[-1]
        result["joined"], result["output_text"] = "".join(deltas), final_text
        if result["joined"] != final_text or not final_text:
            print(json.dumps(result))
            raise SystemExit("joined deltas differ from output_text")

        # 2. Local validation failure: INVALID_ARGUMENT with ErrorInfo and BadRequest details.
        try:
            list(stub.CreateResponse(responses_pb2.CreateResponseRequest(input_text="hi"), timeout=30))
            raise SystemExit("a request without a model succeeded")
        except grpc.RpcError as err:
            result["code"] = err.code().name
            status = rpc_status.from_call(err)
            for detail in status.details:
                if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    detail.Unpack(info)
                    result["reason"], result["domain"] = info.reason, info.domain
                elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad = error_details_pb2.BadRequest()
                    detail.Unpack(bad)
                    result["violations"] = [v.field for v in bad.field_violations]

        # 3. A conversation, continued by two responses.
        conversations = conversations_pb2_grpc.ConversationsServiceStub(channel)
        conv = conversations.CreateConversation(
            conversations_pb2.CreateConversationRequest(metadata={"user_id": "user_123"}),
            timeout=30,
        ).conversation
        answers = []
        for question in ["My name is Ada.", "What is my name?"]:
            request = responses_pb2.CreateResponseRequest(
                model="gpt-4.1", conversation=conv.id, input_text=question, stream=False
            )
            answers.append(next(stub.CreateResponse(request, timeout=30)).completed.response.output_text)
        items = conversations.ListConversationItems(
            conversations_pb2.ListConversationItemsRequest(conversation_id=conv.id, order="asc"),
            timeout=30,
        ).items
        result["conversation_items"] = len(items.data)
        result["answers"] = answers

        # 4. A background response, polled until it finishes.
        job = next(stub.CreateResponse(responses_pb2.CreateResponseRequest(
            model="gpt-4.1", input_text="A long report", background=True, stream=False), timeout=30))
        result["background_first"] = job.WhichOneof("event")
        response_id = job.queued.response.id
        deadline = time.monotonic() + 20
        while True:
            response = stub.GetResponse(
                responses_pb2.GetResponseRequest(response_id=response_id), timeout=30
            ).response
            if response.status in ("completed", "failed", "incomplete", "cancelled"):
                break
            if time.monotonic() > deadline:
                raise SystemExit("the background response never finished")
            time.sleep(0.05)
        result["background_status"] = response.status
        result["background_text"] = response.output_text
    print(json.dumps(result))


if __name__ == "__main__":
    main()
